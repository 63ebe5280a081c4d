#!/usr/bin/env python3
"""Stream the root filesystem of the sample grading image to stdout, as a tar for `docker import -`.

    compose-rootfs.py BASE_TAR GRADING_DIR

BASE_TAR is the cached debootstrap tarball; GRADING_DIR is images/grading. The output is
BASE_TAR with:
  - the user and group `worker` (uid/gid 4242, home /task) added to /etc/passwd, group,
    shadow and gshadow;
  - GRADING_DIR/bin/* installed as /usr/local/bin/* (0755);
  - GRADING_DIR/lib/grading_side/*.py installed under /usr/local/lib/inginious-agent-docker/ (0644);
  - /task (worker, 0755) and /archive (worker, 0777).
No temporary file is written: the base tar is read and the new one written as streams.
"""

import io
import os
import sys
import tarfile
import time

WORKER = 4242
ACCOUNT_LINES = {
    "etc/passwd": "worker:x:4242:4242:INGInious task user:/task:/bin/bash\n",
    "etc/group": "worker:x:4242:\n",
    "etc/shadow": "worker:!:19000:0:99999:7:::\n",
    "etc/gshadow": "worker:!::\n",
}
LIB_DEST = "usr/local/lib/inginious-agent-docker"
NOW = int(time.time())


def norm(name):
    name = name[2:] if name.startswith("./") else name
    return name.rstrip("/")


def add_dir(out, name, mode=0o755, uid=0, gid=0):
    info = tarfile.TarInfo("./" + name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = NOW
    out.addfile(info)


def add_bytes(out, name, data, mode):
    info = tarfile.TarInfo("./" + name)
    info.size = len(data)
    info.mode = mode
    info.mtime = NOW
    out.addfile(info, io.BytesIO(data))


def source_files(directory, suffix=None):
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if os.path.isfile(path) and (suffix is None or entry.endswith(suffix)):
            yield entry, path


def main(base_tar, grading_dir):
    seen = set()
    out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
    with tarfile.open(base_tar, mode="r|") as base:
        for member in base:
            name = norm(member.name)
            if name in ACCOUNT_LINES and member.isfile():
                data = base.extractfile(member).read()
                line = ACCOUNT_LINES[name].encode()
                if not any(l.startswith(b"worker:") for l in data.splitlines()):
                    if data and not data.endswith(b"\n"):
                        data += b"\n"
                    data += line
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
                seen.add(name)
            elif member.isfile():
                out.addfile(member, base.extractfile(member))
            else:
                out.addfile(member)
    missing = set(ACCOUNT_LINES) - seen
    if missing:
        raise SystemExit("compose-rootfs: the base tarball lacks %s" % ", ".join(sorted(missing)))

    add_dir(out, "task", 0o755, WORKER, WORKER)
    add_dir(out, "archive", 0o777, WORKER, WORKER)
    add_dir(out, LIB_DEST)
    add_dir(out, LIB_DEST + "/grading_side")
    for entry, path in source_files(os.path.join(grading_dir, "lib", "grading_side"), ".py"):
        with open(path, "rb") as f:
            add_bytes(out, "%s/grading_side/%s" % (LIB_DEST, entry), f.read(), 0o644)
    for entry, path in source_files(os.path.join(grading_dir, "bin")):
        with open(path, "rb") as f:
            add_bytes(out, "usr/local/bin/" + entry, f.read(), 0o755)
    out.close()
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
