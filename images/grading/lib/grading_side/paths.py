"""Fixed places inside a grading container, shared by the entry script and the commands."""

import os

WORKER_UID = 4242
WORKER_GID = 4242
WORKER_USER = "worker"

TASK_DIR = "/task"
STUDENT_DIR = "/task/student"
ARCHIVE_DIR = "/archive"
SOCKETS_DIR = "/sockets"
PARENT_SOCKET = "/__parent.sock"  # bound by the agent in student containers

# Root-owned runtime directory of the entry script. Only the control socket in it
# is reachable by the task user.
RUN_DIR = "/run/inginious-agent-docker"
CONTROL_SOCKET = os.environ.get("INGINIOUS_CONTROL_SOCKET", RUN_DIR + "/control.sock")

INPUT_DIR = "/.__input"
INPUT_FILE = os.environ.get("INGINIOUS_INPUT", INPUT_DIR + "/input.json")

OUTPUT_DIR = "/.__output"
FEEDBACK_FILE = os.environ.get("INGINIOUS_FEEDBACK", OUTPUT_DIR + "/feedback.json")

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
