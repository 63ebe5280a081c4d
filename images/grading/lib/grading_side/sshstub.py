"""A stand-in for sshd: a TCP listener on port 22 that greets and hangs up.

Enough for tests of the agent's ssh plumbing (port publishing, ssh_debug/ssh_student
messages); no shell is ever offered.
"""

import secrets
import socket
import threading

BANNER = b"SSH-2.0-inginious-agent-docker-test\r\n"


def random_password():
    return secrets.token_urlsafe(12)


def _listen(port):
    try:
        server = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True, reuse_port=False)
    except (OSError, ValueError):
        server = socket.create_server(("0.0.0.0", port))
    return server


def _serve(server):
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        try:
            conn.settimeout(5)
            conn.sendall(BANNER)
        except OSError:
            pass
        finally:
            conn.close()


def start(port=22):
    """Start the listener in a daemon thread; returns the listening socket."""
    server = _listen(port)
    threading.Thread(target=_serve, args=(server,), name="ssh-stub", daemon=True).start()
    return server
