"""The feedback file written by the feedback-* commands and read by the entry script.

Stored as one JSON object in FEEDBACK_FILE. Every update takes an exclusive lock on the
file's directory, reads the object, changes it and replaces the file atomically, so that
commands run in parallel do not lose each other's writes. Its layout is private to this
package:

    {"result": str, "text": str, "grade": float, "state": str,
     "problems": {pid: {"result": str, "text": str}}, "tests": {}, "custom": {}}
"""

import argparse
import contextlib
import fcntl
import json
import math
import os
import sys
import tempfile

from . import paths


class FeedbackError(Exception):
    pass


def load(path=None):
    """The stored feedback: {} when there is none. Raises FeedbackError when the file is
    not a JSON object. The file is never followed through a symlink."""
    path = path or paths.FEEDBACK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise FeedbackError("the feedback file cannot be read (%s)" % e.strerror)
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise FeedbackError("the feedback file is not valid JSON")
    if not isinstance(data, dict):
        raise FeedbackError("the feedback file does not hold a JSON object")
    return data


@contextlib.contextmanager
def _locked(path):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(dfd)


def update(change, path=None):
    """Apply `change(feedback_dict)` to the stored feedback."""
    path = path or paths.FEEDBACK_FILE
    with _locked(path):
        data = load(path)
        change(data)
        directory = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".feedback-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _problem(data, pid):
    problems = data.setdefault("problems", {})
    entry = problems.get(pid)
    if not isinstance(entry, dict):
        entry = problems[pid] = {}
    return entry


def set_result(result, problem=None):
    def change(data):
        if problem:
            _problem(data, problem)["result"] = result
        else:
            data["result"] = result
    update(change)


def set_text(text, problem=None, append=False):
    def change(data):
        target = _problem(data, problem) if problem else data
        old = target.get("text", "")
        target["text"] = (old if isinstance(old, str) else "") + text if append else text
    update(change)


def set_grade(grade):
    update(lambda data: data.__setitem__("grade", float(grade)))


def set_state(state):
    update(lambda data: data.__setitem__("state", state))


def set_custom(key, value):
    update(lambda data: data.setdefault("custom", {}).__setitem__(key, value))


def set_test(key, value):
    update(lambda data: data.setdefault("tests", {}).__setitem__(key, value))


def to_result(data):
    """The fields of a `result` message made from the stored feedback (without
    stdout/stderr/archive). Missing result -> "error" (the value INGInious' agent uses);
    a problem without its own result takes the global one."""
    result = data.get("result")
    result = result if isinstance(result, str) else "error"
    text = data.get("text", "")
    out = {"result": result, "text": text if isinstance(text, str) else str(text)}
    grade = data.get("grade")
    if isinstance(grade, (int, float)) and not isinstance(grade, bool) and math.isfinite(grade):
        out["grade"] = float(grade)
    problems = {}
    raw_problems = data.get("problems")
    for pid, entry in (raw_problems.items() if isinstance(raw_problems, dict) else ()):
        if isinstance(entry, dict):
            presult = entry.get("result")
            ptext = entry.get("text", "")
            problems[str(pid)] = [presult if isinstance(presult, str) else result,
                                  ptext if isinstance(ptext, str) else str(ptext)]
    out["problems"] = problems
    for key in ("tests", "custom"):
        value = data.get(key)
        out[key] = value if isinstance(value, dict) else {}
    state = data.get("state", "")
    out["state"] = state if isinstance(state, str) else str(state)
    return out


# ---------------------------------------------------------------- commands


def _fail(prog, message):
    sys.stderr.write("%s: %s\n" % (prog, message))
    sys.exit(2)


def _problem_option(parser):
    parser.add_argument("-i", "--id", "-p", "--problem", dest="problem", default="",
                        help="problem id (default: the whole submission)")


def cmd_result(argv):
    parser = argparse.ArgumentParser(prog="feedback-result",
                                     description="Set the result of the submission or of one problem.")
    _problem_option(parser)
    parser.add_argument("result", help="success, failed, crash, error, timeout, overflow or killed")
    args = parser.parse_args(argv)
    set_result(args.result, args.problem or None)


def cmd_grade(argv):
    parser = argparse.ArgumentParser(prog="feedback-grade", description="Set the grade (0-100) of the submission.")
    parser.add_argument("grade")
    args = parser.parse_args(argv)
    try:
        grade = float(args.grade)
    except ValueError:
        _fail(parser.prog, "not a number: %r" % args.grade)
    if not math.isfinite(grade):
        _fail(parser.prog, "not a finite number: %r" % args.grade)
    set_grade(grade)


def cmd_msg(argv):
    parser = argparse.ArgumentParser(prog="feedback-msg",
                                     description="Set the feedback text of the submission or of one problem.",
                                     epilog="Without -m, the text is read from stdin.")
    _problem_option(parser)
    parser.add_argument("-m", "--message", default=None, help="the text")
    parser.add_argument("-a", "--append", action="store_true", help="append to the current text")
    parser.add_argument("-e", "--escape", action="store_true", help="interpret backslash escapes")
    args = parser.parse_args(argv)
    text = args.message if args.message is not None else sys.stdin.read()
    if args.escape:
        text = text.encode("utf-8").decode("unicode-escape").encode("latin-1").decode("utf-8")
    set_text(text, args.problem or None, args.append)


def _parse_json(raw, prog):
    try:
        return json.loads(raw)
    except ValueError:
        _fail(prog, "not valid JSON: %r" % raw)


def cmd_custom(argv):
    parser = argparse.ArgumentParser(prog="feedback-custom", description="Set a custom key/value.",
                                     epilog="Without -j, numbers are stored as numbers, anything else as a string.")
    parser.add_argument("-j", "--json", action="store_true", help="the value is JSON")
    parser.add_argument("key")
    parser.add_argument("value")
    args = parser.parse_args(argv)
    if args.json:
        value = _parse_json(args.value, parser.prog)
    else:
        value = args.value
        for convert in (int, float):
            try:
                value = convert(args.value)
                break
            except ValueError:
                pass
    set_custom(args.key, value)


def cmd_test(argv):
    parser = argparse.ArgumentParser(prog="feedback-test", description="Set an entry of the tests map.",
                                     epilog="Without -j, true/false become booleans, anything else a string.")
    parser.add_argument("-j", "--json", action="store_true", help="the value is JSON (not an object)")
    parser.add_argument("key")
    parser.add_argument("value")
    args = parser.parse_args(argv)
    if args.json:
        value = _parse_json(args.value, parser.prog)
        if isinstance(value, dict):
            _fail(parser.prog, "a test value cannot be an object")
    elif args.value.lower() in ("true", "false"):
        value = args.value.lower() == "true"
    else:
        value = args.value
    set_test(args.key, value)


def cmd_state(argv):
    parser = argparse.ArgumentParser(prog="feedback-state", description="Set the state kept for the next submission.")
    parser.add_argument("state")
    args = parser.parse_args(argv)
    set_state(args.state)


COMMANDS = {
    "feedback-result": cmd_result,
    "feedback-grade": cmd_grade,
    "feedback-msg": cmd_msg,
    "feedback-custom": cmd_custom,
    "feedback-test": cmd_test,
    "feedback-state": cmd_state,
}


def main(name, argv):
    try:
        COMMANDS[name](argv)
    except (OSError, FeedbackError) as e:
        _fail(name, str(e))
