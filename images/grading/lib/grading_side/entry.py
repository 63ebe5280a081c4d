"""The grading container's entry script (`INGInious`, the image CMD, run as root).

Threads:
  - main: reads framed messages from the agent on stdin and dispatches them;
  - job: started by the first `start` message; prepares /task, runs the grading script,
    sends the `result` message and ends the process with exit code 0;
  - control: accepts connections of `run_student` processes on CONTROL_SOCKET (one
    thread per connection) and relays their requests to the agent and the agent's
    answers back to them.

The original stdout is kept on a private descriptor for protocol messages only; fd 1 is
pointed at stderr and fd 0 at /dev/null so that nothing else can write into, or read
from, the protocol stream.
"""

import errno
import os
import shlex
import socket
import stat
import sys
import threading
import traceback

from . import feedback, inputdata, paths, sshstub, wire

OUTPUT_CAP = 2 * 1024 * 1024  # bytes of the task's stdout/stderr kept in debug results
ARCHIVE_CAP = 40 * 1024 * 1024  # compressed archive larger than this is left out

RUN_SCRIPT = paths.TASK_DIR + "/run"


def log(message):
    try:
        sys.stderr.write("INGInious entry: %s\n" % message)
        sys.stderr.flush()
    except OSError:
        pass


class AgentChannel:
    """Framed messages to the agent on the private copy of the original stdout."""

    def __init__(self, fd):
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, message):
        data = wire.encode(message)
        with self._lock:
            wire.write_all(self._fd, data)


class StudentRequests:
    """run_student requests in flight: socket_id -> [connection, its send lock, container id,
    ssh_student messages waiting for the container id]."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_id = {}

    def add(self, socket_id, conn, conn_lock):
        with self._lock:
            if socket_id in self._by_id:
                return False
            self._by_id[socket_id] = [conn, conn_lock, None, []]
            return True

    def set_container(self, socket_id, container_id):
        """Record the container id; returns (entry, ssh_student messages to send now)."""
        with self._lock:
            entry = self._by_id.get(socket_id)
            if not entry:
                return None, []
            entry[2] = container_id
            waiting, entry[3] = entry[3], []
            return entry, [dict(m, container_id=container_id) for m in waiting]

    def ssh_student(self, socket_id, message):
        """The ssh_student message to send now (with the container id), or None when the
        container id is not known yet (it is then sent by set_container)."""
        with self._lock:
            entry = self._by_id.get(socket_id)
            if not entry:
                return None
            if isinstance(entry[2], str):
                return dict(message, container_id=entry[2])
            entry[3].append(message)
            return None

    def pop(self, socket_id):
        with self._lock:
            return self._by_id.pop(socket_id, None)

    def drop_connection(self, conn):
        with self._lock:
            for sid in [sid for sid, e in self._by_id.items() if e[0] is conn]:
                del self._by_id[sid]


def _send_on(conn, conn_lock, message):
    try:
        with conn_lock:
            conn.sendall(wire.encode(message))
    except OSError:
        pass


def _as_limit(value):
    try:
        value = int(value or 0)
    except (TypeError, ValueError):
        return 0
    return max(value, 0)


class Entry:
    def __init__(self):
        self.agent = AgentChannel(os.dup(1))
        self.stdin_fd = os.dup(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(2, 1)
        os.close(devnull)
        self.students = StudentRequests()
        self.job_thread = None

    # ------------------------------------------------------------ main loop

    def run(self):
        try:
            self._start_control_server()
        except OSError as e:
            log("cannot open the control socket (%s); run_student will not work" % e)
        read = wire.fd_reader(self.stdin_fd)
        while True:
            try:
                message = wire.read_frame(read)
            except Exception as e:  # truncated stream, oversized frame, bad msgpack
                log("unreadable message on stdin: %s" % e)
                if self.job_thread is None:
                    self._finish_with({"result": "crash", "text": "The grading container received an unreadable message: %s" % e,
                                       "problems": {}, "tests": {}, "custom": {}, "state": ""})
                message = None
            if message is None:
                break
            try:
                self._dispatch(message)
            except Exception:
                log("error while handling a %r message:\n%s" % (message.get("type"), traceback.format_exc()))
        # stdin is closed: without a job there is nothing left to do; with one, let it end.
        if self.job_thread is None:
            os._exit(0)
        self.job_thread.join()
        os._exit(0)

    def _dispatch(self, message):
        kind = message.get("type")
        if kind == "start":
            if self.job_thread is None:
                self.job_thread = threading.Thread(target=self._job, args=(message,), name="job", daemon=True)
                self.job_thread.start()
            else:
                log("ignoring a second start message")
        elif kind == "run_student_started":
            socket_id = message.get("socket_id")
            container_id = message.get("container_id")
            entry, ssh_messages = self.students.set_container(socket_id, container_id)
            if entry:
                _send_on(entry[0], entry[1], {"type": "run_student_started", "socket_id": socket_id,
                                              "container_id": container_id})
            for ssh_message in ssh_messages:
                self.agent.send(ssh_message)
        elif kind == "run_student_retval":
            socket_id = message.get("socket_id")
            entry = self.students.pop(socket_id)
            if entry:
                _send_on(entry[0], entry[1], {"type": "run_student_retval", "socket_id": socket_id,
                                              "retval": message.get("retval")})
        else:
            log("ignoring a message of type %r" % (kind,))

    # ------------------------------------------------------------ control socket (run_student)

    def _start_control_server(self):
        os.makedirs(paths.RUN_DIR, mode=0o755, exist_ok=True)
        os.chmod(paths.RUN_DIR, 0o755)
        try:
            os.unlink(paths.CONTROL_SOCKET)
        except FileNotFoundError:
            pass
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(paths.CONTROL_SOCKET)
        os.chmod(paths.CONTROL_SOCKET, 0o666)
        server.listen(16)
        threading.Thread(target=self._accept_loop, args=(server,), name="control", daemon=True).start()

    def _accept_loop(self, server):
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_control, args=(conn,), name="control-conn", daemon=True).start()

    def _serve_control(self, conn):
        conn_lock = threading.Lock()
        read = wire.sock_reader(conn)
        try:
            while True:
                message = wire.read_frame(read)
                if message is None:
                    break
                self._handle_control(conn, conn_lock, message)
        except (wire.FrameError, ValueError, OSError) as e:
            log("control connection dropped: %s" % e)
        finally:
            self.students.drop_connection(conn)
            conn.close()

    def _handle_control(self, conn, conn_lock, message):
        kind = message.get("type")
        if kind == "run_student":
            socket_id = message.get("socket_id")
            if not isinstance(socket_id, str) or not socket_id or "/" in socket_id \
                    or not self.students.add(socket_id, conn, conn_lock):
                _send_on(conn, conn_lock, {"type": "run_student_retval", "socket_id": socket_id, "retval": 254})
                return
            environment = message.get("environment")
            self.agent.send({
                "type": "run_student",
                "environment": environment if isinstance(environment, str) and environment else None,
                "time_limit": _as_limit(message.get("time_limit")),
                "hard_time_limit": _as_limit(message.get("hard_time_limit")),
                "memory_limit": _as_limit(message.get("memory_limit")),
                "share_network": bool(message.get("share_network")),
                "socket_id": socket_id,
                "ssh": bool(message.get("ssh")),
                "run_as_root": bool(message.get("run_as_root")),
            })
        elif kind == "ssh_student":
            ready = self.students.ssh_student(message.get("socket_id"), {
                "type": "ssh_student", "ssh_user": str(message.get("ssh_user", "")),
                "ssh_key": str(message.get("ssh_key", ""))})
            if ready:
                self.agent.send(ready)
        else:
            log("ignoring a control message of type %r" % (kind,))

    # ------------------------------------------------------------ the job

    def _finish_with(self, result):
        try:
            self.agent.send({"type": "result", "result": result})
        finally:
            os._exit(0)

    def _job(self, start):
        inp = start.get("input")
        previous_state = inp.get("@state") if isinstance(inp, dict) else None
        previous_state = previous_state if isinstance(previous_state, str) else ""
        try:
            result = Job(start, self.agent).run()
        except Exception as e:
            log("job failed:\n%s" % traceback.format_exc())
            result = {"result": "crash", "text": "Error in the grading container: %s" % e,
                      "problems": {}, "tests": {}, "custom": {}, "state": previous_state}
        self._finish_with(result)


def _walk_chown(top, uid, gid):
    """chown -R without following symlinks."""
    os.lchown(top, uid, gid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            try:
                os.lchown(os.path.join(root, name), uid, gid)
            except OSError:
                pass


def _open_to_all(top):
    """chmod -R a+rwX (leaves symlinks alone), so that an agent without root can delete the job folder."""
    for root, dirs, files in os.walk(top):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            try:
                st = os.lstat(name)
                if stat.S_ISLNK(st.st_mode):
                    continue
                extra = 0o777 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111 else 0o666
                if st.st_mode & extra != extra:
                    os.chmod(name, (st.st_mode | extra) & 0o7777)
            except OSError:
                pass


def _kill_user_processes(uid, rounds=50):
    """SIGKILL every live process of the container whose real uid is `uid` (left-overs of
    the task), and reap the zombies this leaves to us (we are PID 1)."""
    import signal
    import time
    for _ in range(rounds):
        found = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/status" % pid) as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                if fields.get("State", "").strip().startswith("Z"):
                    continue
                if int(fields["Uid"].split()[0]) == uid:
                    found = True
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError, KeyError, IndexError):
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not found:
            return
        time.sleep(0.01)


def _private_file(path):
    """A new root-only file, open for reading and writing."""
    return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600), "w+b")


def _read_capped(f, cap):
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    data = f.read(cap)
    text = data.decode("utf-8", "replace")
    if size > cap:
        text += "\n[output truncated: %d bytes in total]\n" % size
    return text


class Job:
    def __init__(self, start, agent):
        self.start = start
        self.agent = agent
        self.debug = start.get("debug", False)
        self.run_as_root = bool(start.get("run_as_root", False))
        self.uid = 0 if self.run_as_root else paths.WORKER_UID
        self.gid = 0 if self.run_as_root else paths.WORKER_GID
        inp = start.get("input")
        self.input = inp if isinstance(inp, dict) else {}
        state = self.input.get("@state")
        self.previous_state = state if isinstance(state, str) else ""

    def _crash(self, text):
        return {"result": "crash", "text": text, "problems": {}, "tests": {}, "custom": {},
                "state": self.previous_state}

    def _prepare(self):
        os.makedirs(paths.RUN_DIR, mode=0o755, exist_ok=True)
        inputdata.write_input(self.input)
        os.makedirs(paths.OUTPUT_DIR, mode=0o755, exist_ok=True)
        os.chown(paths.OUTPUT_DIR, self.uid, self.gid)
        os.chmod(paths.OUTPUT_DIR, 0o755)
        try:
            os.unlink(paths.FEEDBACK_FILE)
        except FileNotFoundError:
            pass
        os.makedirs(paths.ARCHIVE_DIR, exist_ok=True)
        os.chown(paths.ARCHIVE_DIR, self.uid, self.gid)
        os.chmod(paths.ARCHIVE_DIR, 0o777)
        os.makedirs(paths.TASK_DIR, exist_ok=True)
        _walk_chown(paths.TASK_DIR, paths.WORKER_UID, paths.WORKER_GID)

    def _environment(self):
        env = dict(os.environ)
        user = "root" if self.run_as_root else paths.WORKER_USER
        env.update({
            "HOME": "/root" if self.run_as_root else paths.TASK_DIR,
            "USER": user,
            "LOGNAME": user,
            "INGINIOUS_INPUT": paths.INPUT_FILE,
            "INGINIOUS_FEEDBACK": paths.FEEDBACK_FILE,
            "INGINIOUS_CONTROL_SOCKET": paths.CONTROL_SOCKET,
        })
        env.setdefault("PATH", paths.SAFE_PATH)
        env.setdefault("LANG", "C.UTF-8")
        return env

    def _command(self):
        run_cmd = self.start.get("run_cmd")
        if isinstance(run_cmd, str) and run_cmd.strip():
            return shlex.split(run_cmd)
        if os.path.lexists(RUN_SCRIPT):
            try:
                st = os.stat(RUN_SCRIPT)
                if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o100:
                    os.chmod(RUN_SCRIPT, st.st_mode | 0o111)
            except OSError:
                pass
            return [RUN_SCRIPT]
        return None

    def _spawn(self, command, out, err):
        kwargs = dict(cwd=paths.TASK_DIR, stdin=open(os.devnull, "rb"), stdout=out, stderr=err,
                      env=self._environment(), close_fds=True, start_new_session=True)
        if not self.run_as_root:
            kwargs.update(user=paths.WORKER_UID, group=paths.WORKER_GID, extra_groups=[])
        import subprocess
        try:
            return subprocess.Popen(command, **kwargs)
        except OSError as e:
            if e.errno != errno.ENOEXEC:
                raise
            # A script without a #! line: run it with the shell, as a shell would.
            return subprocess.Popen(["/bin/sh"] + command, **kwargs)

    def _archive(self):
        """(base64 text or None, note or None)"""
        try:
            if not os.listdir(paths.ARCHIVE_DIR):
                return None, None
        except OSError:
            return None, None
        import base64
        import io
        import tarfile
        try:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                for name in sorted(os.listdir(paths.ARCHIVE_DIR)):
                    tar.add(os.path.join(paths.ARCHIVE_DIR, name), arcname=name)
            data = buf.getvalue()
        except (OSError, tarfile.TarError) as e:
            return None, "[the archive was left out: %s]" % e
        if len(data) > ARCHIVE_CAP:
            return None, "[the archive was left out: %d bytes compressed, more than %d]" % (len(data), ARCHIVE_CAP)
        return base64.b64encode(data).decode("ascii"), None

    def run(self):
        self._prepare()

        if self.debug == "ssh":
            sshstub.start(22)
            self.agent.send({"type": "ssh_debug", "ssh_user": "root" if self.run_as_root else paths.WORKER_USER,
                             "ssh_key": sshstub.random_password()})

        command = self._command()
        out_f = _private_file(os.path.join(paths.RUN_DIR, "task-stdout"))
        err_f = _private_file(os.path.join(paths.RUN_DIR, "task-stderr"))
        returncode = None
        if command is None:
            result = self._crash("The grading script /task/run was not found: this task has no run file.")
        else:
            try:
                proc = self._spawn(command, out_f, err_f)
            except OSError as e:
                result = self._crash("The grading script %s could not be started: %s" % (command[0], e.strerror or e))
            else:
                returncode = proc.wait()
                if not self.run_as_root:
                    # Nothing of the task may run on while its output is collected as root.
                    _kill_user_processes(paths.WORKER_UID)
                result = self._result_from_feedback(returncode)

        if self.debug:
            result["stdout"] = _read_capped(out_f, OUTPUT_CAP)
            result["stderr"] = _read_capped(err_f, OUTPUT_CAP)
        out_f.close()
        err_f.close()

        archive, note = self._archive()
        if archive is not None:
            result["archive"] = archive
        if note:
            result["text"] = (result.get("text") or "") + "\n\n" + note
        _open_to_all(paths.TASK_DIR)
        return result

    def _result_from_feedback(self, returncode):
        if returncode < 0:
            how = "was killed by signal %d" % -returncode
        else:
            how = "exited with code %d" % returncode
        try:
            data = feedback.load()
        except feedback.FeedbackError as e:
            return self._crash("The grading script %s and %s." % (how, e))
        if not data:
            if returncode != 0:
                return self._crash("The grading script %s without giving any feedback." % how)
            return self._crash("The grading script ended without giving any feedback.")
        result = feedback.to_result(data)
        if "result" not in data and returncode != 0:
            result["result"] = "crash"
            note = "The grading script %s without setting a result." % how
            result["text"] = result["text"] + ("\n\n" if result["text"] else "") + note
        return result


def main():
    Entry().run()
