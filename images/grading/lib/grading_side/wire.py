"""Length-prefixed msgpack frames: 4-byte big-endian length, then a msgpack map.

The same framing is used on the container's stdin/stdout (agent <-> entry script),
on the control socket (run_student <-> entry script) and on the student socket
(run_student <-> _run_student_intern).
"""

import os
import struct

import msgpack

MAX_MESSAGE = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")


class FrameError(Exception):
    """A frame that cannot be read: truncated stream, oversized or not a msgpack map."""


def encode(message):
    body = msgpack.packb(message, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


def decode(body):
    message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    if not isinstance(message, dict):
        raise FrameError("a message is not a map")
    return message


def _read_exact(read, size, first):
    """Read exactly `size` bytes with `read(n)`. None on a clean EOF before the first byte
    (only when `first`), FrameError on an EOF in the middle."""
    chunks = []
    missing = size
    while missing:
        chunk = read(min(missing, 1 << 20))
        if not chunk:
            if first and missing == size:
                return None
            raise FrameError("stream ended in the middle of a message")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def read_frame(read):
    """Next message from a byte source (`read(n)` returning b"" at EOF); None at EOF."""
    header = _read_exact(read, 4, True)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise FrameError("message of %d bytes is larger than the %d bytes supported" % (size, MAX_MESSAGE))
    return decode(_read_exact(read, size, False))


def fd_reader(fd):
    return lambda n: os.read(fd, n)


def sock_reader(sock):
    return lambda n: sock.recv(n)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
