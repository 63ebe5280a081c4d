"""Student containers: `run_student` (grading side) and `_run_student_intern` (student side).

run_student, a process of the grading script (user worker, grading container):
  1. listens on a fresh unix socket /sockets/<socket_id>.sock (/sockets is shared with the agent);
  2. connects to the entry script's control socket and sends
     {type: run_student, environment, time_limit, hard_time_limit, memory_limit,
      share_network, ssh, run_as_root, socket_id}; the entry script forwards it to the agent;
  3. the agent creates the student container with that socket bound at /__parent.sock;
     _run_student_intern connects to it; run_student accepts that one connection and sends
     its own stdin/stdout/stderr descriptors (SCM_RIGHTS) with the command
     {type: run_student_command, argv, cwd, user, env, ssh};
  4. the student process writes straight into those descriptors: no copying, binary-safe,
     interactive; _run_student_intern exits with the command's exit code;
  5. the agent reports {type: run_student_retval, retval} (exit code, 252, 253 or 254),
     relayed by the entry script; run_student exits with it.
With --ssh, _run_student_intern also starts the port-22 stand-in and sends
{type: ssh_student, ssh_user, ssh_key} back; run_student relays it (with its socket_id)
to the entry script, which tells the agent (adding the container id).
"""

import argparse
import os
import secrets
import select
import socket
import sys
import time

from . import paths, sshstub, wire

RETVAL_PROXY_ERROR = 254


def _err(message):
    sys.stderr.write("run_student: %s\n" % message)
    sys.stderr.flush()


# ------------------------------------------------------------------ run_student


def _parse(argv):
    parser = argparse.ArgumentParser(
        prog="run_student",
        usage="run_student [options] -- CMD [ARG...]",
        description="Run a command in a new student container and return its exit code "
                    "(252: out of memory, 253: timeout, 254: could not start). "
                    "stdin, stdout and stderr are those of run_student itself.")
    parser.add_argument("--env", "--container", dest="environment", default=None,
                        help="environment (image) of the student container; default: the current one")
    parser.add_argument("--time", type=int, default=0, help="CPU time limit in seconds (0: the job's)")
    parser.add_argument("--hard-time", type=int, default=0, help="wall time limit in seconds (0: the job's)")
    parser.add_argument("--memory", type=int, default=0, help="memory limit in MB (0: the job's)")
    parser.add_argument("--share-network", action="store_true", help="share the grading container's network")
    parser.add_argument("--ssh", action="store_true", help="ask for ssh access to the student container")
    parser.add_argument("--run-as-root", action="store_true", help="ask to run as root (agents refuse it: 254)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    if not args.cmd:
        parser.error("no command given")
    return args


def _student_cwd():
    try:
        cwd = os.getcwd()
    except OSError:
        return paths.STUDENT_DIR
    if cwd == paths.STUDENT_DIR or cwd.startswith(paths.STUDENT_DIR + "/"):
        return cwd
    return paths.STUDENT_DIR


def _student_env(run_as_root):
    env = {
        "PATH": paths.SAFE_PATH,
        "HOME": paths.STUDENT_DIR,
        "USER": "root" if run_as_root else paths.WORKER_USER,
        "LOGNAME": "root" if run_as_root else paths.WORKER_USER,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    return env


def run_student_main(argv):
    args = _parse(argv)
    socket_id = "rs-" + secrets.token_hex(8)
    socket_path = os.path.join(paths.SOCKETS_DIR, socket_id + ".sock")
    listener = control = student = None
    try:
        try:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(socket_path)
            os.chmod(socket_path, 0o666)
            listener.listen(1)
            control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            control.connect(paths.CONTROL_SOCKET)
            control.sendall(wire.encode({
                "type": "run_student", "environment": args.environment,
                "time_limit": args.time, "hard_time_limit": args.hard_time, "memory_limit": args.memory,
                "share_network": args.share_network, "ssh": args.ssh, "run_as_root": args.run_as_root,
                "socket_id": socket_id,
            }))
        except OSError as e:
            _err("cannot ask the agent for a student container: %s" % e)
            return RETVAL_PROXY_ERROR

        command = {"type": "run_student_command", "argv": args.cmd, "cwd": _student_cwd(),
                   "user": "root" if args.run_as_root else paths.WORKER_USER,
                   "env": _student_env(args.run_as_root), "ssh": args.ssh}
        control_read = wire.sock_reader(control)
        while True:
            waiting = [control] + [s for s in (listener, student) if s is not None]
            readable, _, _ = select.select(waiting, [], [])
            if listener in readable:
                conn, _ = listener.accept()
                # One student container, one connection: stop listening.
                listener.close()
                listener = None
                _unlink(socket_path)
                try:
                    socket.send_fds(conn, [wire.encode(command)], [0, 1, 2])
                    student = conn
                except OSError as e:
                    _err("cannot hand the command to the student container: %s" % e)
                    conn.close()
            if student is not None and student in readable:
                try:
                    message = wire.read_frame(wire.sock_reader(student))
                except (wire.FrameError, ValueError, OSError):
                    message = None
                if message is None:
                    student.close()
                    student = None
                elif message.get("type") == "ssh_student":
                    control.sendall(wire.encode({"type": "ssh_student", "socket_id": socket_id,
                                                 "ssh_user": message.get("ssh_user"),
                                                 "ssh_key": message.get("ssh_key")}))
            if control in readable:
                try:
                    message = wire.read_frame(control_read)
                except (wire.FrameError, ValueError, OSError) as e:
                    _err("lost the link to the entry script: %s" % e)
                    return RETVAL_PROXY_ERROR
                if message is None:
                    _err("the entry script closed the link")
                    return RETVAL_PROXY_ERROR
                if message.get("type") == "run_student_retval":
                    retval = message.get("retval")
                    return retval if isinstance(retval, int) and 0 <= retval <= 255 else RETVAL_PROXY_ERROR
    finally:
        for s in (listener, control, student):
            if s is not None:
                s.close()
        _unlink(socket_path)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# ------------------------------------------------------------------ _run_student_intern


def _connect_parent(deadline=10.0):
    end = time.monotonic() + deadline
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(paths.PARENT_SOCKET)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() >= end:
                raise
            time.sleep(0.05)


def _receive_command(sock):
    """The first frame, with the three descriptors that come with its first bytes."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
    buffered = [data]

    def read(n):
        if buffered:
            chunk = buffered.pop()
            if len(chunk) > n:
                buffered.append(chunk[n:])
                chunk = chunk[:n]
            if chunk:
                return chunk
        return sock.recv(n)

    message = wire.read_frame(read)
    if message is None or message.get("type") != "run_student_command" or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise wire.FrameError("no command received")
    return message, fds


def intern_main(argv):
    import subprocess
    try:
        sock = _connect_parent()
        command, fds = _receive_command(sock)
    except (OSError, wire.FrameError, ValueError) as e:
        _err("_run_student_intern: cannot get the command: %s" % e)
        return RETVAL_PROXY_ERROR
    as_root = command.get("user") == "root"
    if command.get("ssh"):
        try:
            sshstub.start(22)
            sock.sendall(wire.encode({"type": "ssh_student", "ssh_user": "root" if as_root else paths.WORKER_USER,
                                      "ssh_key": sshstub.random_password()}))
        except OSError as e:
            _err("_run_student_intern: ssh stand-in failed: %s" % e)
    argv_ = [str(a) for a in command.get("argv") or []]
    env = command.get("env") if isinstance(command.get("env"), dict) else {"PATH": paths.SAFE_PATH}
    cwd = command.get("cwd") if isinstance(command.get("cwd"), str) else paths.STUDENT_DIR
    if not os.path.isdir(cwd):
        cwd = paths.STUDENT_DIR if os.path.isdir(paths.STUDENT_DIR) else "/"
    kwargs = dict(stdin=fds[0], stdout=fds[1], stderr=fds[2], cwd=cwd, env=env, close_fds=True)
    if not as_root:
        kwargs.update(user=paths.WORKER_UID, group=paths.WORKER_GID, extra_groups=[])
    try:
        proc = subprocess.Popen(argv_, **kwargs)
    except OSError as e:
        try:
            os.write(fds[2], ("%s: %s\n" % (argv_[0] if argv_ else "", e.strerror or e)).encode("utf-8", "replace"))
        except OSError:
            pass
        code = 127 if isinstance(e, FileNotFoundError) else 126
    else:
        for fd in fds:
            os.close(fd)
        rc = proc.wait()
        code = rc if rc >= 0 else 128 - rc
    try:
        sock.sendall(wire.encode({"type": "exited", "code": code}))
        sock.close()
    except OSError:
        pass
    return code
