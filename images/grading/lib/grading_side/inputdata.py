"""The submission's input, as the task sees it, and the `getinput` command.

The entry script writes the `input` map of the `start` message to INPUT_FILE as JSON.
JSON has no bytes, so every bytes value (uploaded files are {"filename": str,
"value": bytes}) is written to its own file next to it and replaced in the JSON by
{"@bytes": "/.__input/blob-N"}. `getinput` turns those back into the raw bytes.
"""

import argparse
import json
import os
import sys

from . import paths

BYTES_KEY = "@bytes"


def _json_key(key):
    if isinstance(key, str):
        return key
    if isinstance(key, (bytes, bytearray)):
        return bytes(key).decode("utf-8", "replace")
    return str(key)


def write_input(data, directory=paths.INPUT_DIR, target=paths.INPUT_FILE):
    """Write `data` (msgpack-decoded) as JSON plus one file per bytes value, all readable by everyone."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    counter = [0]

    def convert(value):
        if isinstance(value, (bytes, bytearray, memoryview)):
            path = os.path.join(directory, "blob-%d" % counter[0])
            counter[0] += 1
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(value)
            return {BYTES_KEY: path}
        if isinstance(value, dict):
            return {_json_key(k): convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        return repr(value)

    converted = convert(data if isinstance(data, dict) else {})
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(converted, f)


def load_input(path=None):
    with open(path or paths.INPUT_FILE, "r", encoding="utf-8") as f:
        return json.load(f)


def _is_bytes_ref(value):
    return isinstance(value, dict) and set(value) == {BYTES_KEY}


def _is_file(value):
    return isinstance(value, dict) and set(value) == {"filename", "value"}


def lookup(data, name):
    """The input field `name`; `name:sub` reaches a key of a map field (e.g. `file:filename`)."""
    if name in data:
        return data[name]
    if ":" in name:
        field, sub = name.split(":", 1)
        value = data.get(field)
        if isinstance(value, dict) and sub in value:
            return value[sub]
    raise KeyError(name)


def render(value):
    """The bytes `getinput` prints for a field value."""
    if _is_file(value):
        value = value["value"]
    if _is_bytes_ref(value):
        with open(value[BYTES_KEY], "rb") as f:
            return f.read()
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value).encode("utf-8")
    return json.dumps(value).encode("utf-8")


def cmd_getinput(argv):
    parser = argparse.ArgumentParser(
        prog="getinput",
        description="Print an input field of the submission (uploaded files: their content; "
                    "NAME:filename: their name; lists and maps: JSON).")
    parser.add_argument("--file", action="store_true", help="write the value to DEST instead of printing it")
    parser.add_argument("name")
    parser.add_argument("dest", nargs="?")
    args = parser.parse_args(argv)
    if args.file and not args.dest:
        parser.error("--file needs a destination")
    if args.dest and not args.file:
        parser.error("a destination needs --file")
    try:
        value = render(lookup(load_input(), args.name))
    except KeyError:
        sys.stderr.write("getinput: no input field %r\n" % args.name)
        sys.exit(2)
    except (OSError, ValueError) as e:
        sys.stderr.write("getinput: cannot read the input (%s)\n" % e)
        sys.exit(2)
    if args.file:
        with open(args.dest, "wb") as f:
            f.write(value)
    else:
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()


def cmd_archive(argv):
    parser = argparse.ArgumentParser(prog="archive", description="Add files to, or remove them from, /archive.")
    parser.add_argument("-a", "--add", default="", help="copy this file into the archive")
    parser.add_argument("-r", "--remove", default="", help="remove this name from the archive")
    parser.add_argument("-s", "--subdir", default="", help="subdirectory of the archive")
    args = parser.parse_args(argv)
    import shutil
    target = os.path.join(paths.ARCHIVE_DIR, args.subdir)
    try:
        if args.add:
            os.makedirs(target, exist_ok=True)
            shutil.copy(args.add, os.path.join(target, os.path.basename(args.add)))
        if args.remove:
            os.remove(os.path.join(target, args.remove))
    except OSError as e:
        sys.stderr.write("archive: %s\n" % e)
        sys.exit(2)
