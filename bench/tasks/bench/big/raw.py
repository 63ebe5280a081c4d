"""The bench's big job (image test-raw runs /task/raw.py instead of the container side):
answers `start` at once with a result carrying `archive` = base64 of a real .tgz holding
SIZE bytes of random data (gzip cannot shrink it) and `stdout` = SIZE bytes of text.
SIZE is the job input's "size" (bytes, default 20 MiB). Keep 2.4 x SIZE under the agent's
64 MiB message cap."""
import base64
import io
import os
import struct
import sys
import tarfile
import time

import msgpack

out = sys.stdout.buffer


def read_start():
    header = sys.stdin.buffer.read(4)
    if len(header) < 4:
        sys.exit(0)
    (length,) = struct.unpack(">I", header)
    return msgpack.unpackb(sys.stdin.buffer.read(length), raw=False)


start = read_start()
size = int(start["input"].get("size", 20 * 1024 * 1024))

data = os.urandom(size)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
    info = tarfile.TarInfo("random.bin")
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))
archive = base64.b64encode(buf.getvalue()).decode("ascii")
del data, buf

line = "bench stdout line: the quick brown fox jumps over the lazy dog 0123456789\n"
stdout = (line * (size // len(line) + 1))[:size]

body = msgpack.packb(
    {"type": "result", "result": {"result": "success", "text": "big", "archive": archive, "stdout": stdout, "stderr": ""}},
    use_bin_type=True,
)
out.write(struct.pack(">I", len(body)) + body)
out.flush()
