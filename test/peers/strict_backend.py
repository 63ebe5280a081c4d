#!/usr/bin/python3
"""Strict stand-in for the INGInious backend's agent socket, used by the tests.

    /usr/bin/python3 test/peers/strict_backend.py --bind tcp://127.0.0.1:PORT [--script FILE.json]

Binds a ROUTER socket (IPv6 enabled, like INGInious) and decodes every agent frame the way INGInious does
(msgpack.unpackb(frame, use_list=False, strict_map_key=False, raw=False)), then checks it strictly: a known
agent message type, exactly the declared field names, and the field types the backend (and the frontend it
forwards to) rely on. The real backend only checks the type and the field names (a violation stops its whole
run loop); types are checked here so that a JS agent matches what the Python agent sends.

stdout gets one JSON line per event, flushed:
  {"bound": endpoint, "port": n}                            once, after binding (useful with port "*")
  {"identity": hex, "type", "ok", "errors", "warnings", "message"}   per received frame (bytes shown as
                                                            {"$bytes": len, "sha256": hex}, tuples as lists)
  {"step": i, "error": text}                                when a step fails (the script stops there)
  {"done": true, "ok": all_valid}                           at the end; exit status 0 iff ok

The script (file, or stdin when --script is absent or "-") is a JSON list of steps:
  {"wait": "AgentJobDone", "match": {"job_id": "j1"}, "timeout": 10}   next frame of that type (after the one
                                      the previous wait matched) whose top-level fields equal "match" (JSON form)
  {"send": {"@type": "BackendNewJob", ...}}   to the last identity that spoke; fields are packed in declared
                                      order then "@type"; {"$b64": s} is bytes, {"$float": x} a float,
                                      {"$map": [[k, v], ...]} a map with any keys (e.g. ints)
  {"send_raw": {"$b64": s}}           send an arbitrary frame
  {"sleep": 0.5}                      keep receiving for that long
  {"expect_count": {"type": "Pong", "count": 3, "timeout": 5}}   frames of that type received since the start >= count
  {"ping_every": 1.0}                 from now on send Ping to the last identity at that period (0 stops)
"""
import argparse, base64, hashlib, json, math, sys, time
import msgpack, zmq

# Every dataclass of inginious/common/messages.py, fields in declared order (what dump() writes before "@type").
FIELDS = {
    "ClientHello": ("name",),
    "ClientNewJob": ("job_id", "priority", "course_id", "task_id", "task_problems", "inputdata", "environment_type",
                     "environment", "environment_parameters", "debug", "launcher"),
    "ClientKillJob": ("job_id",), "ClientGetQueue": (),
    "BackendUpdateEnvironments": ("available_environments",), "BackendJobStarted": ("job_id",),
    "BackendJobDone": ("job_id", "result", "grade", "problems", "tests", "custom", "state", "archive", "stdout", "stderr"),
    "BackendJobSSHDebug": ("job_id", "host", "port", "user", "password"),
    "BackendGetQueue": ("jobs_running", "jobs_waiting"),
    "BackendNewJob": ("job_id", "course_id", "task_id", "task_problems", "inputdata", "environment_type", "environment",
                      "environment_parameters", "debug"),
    "BackendKillJob": ("job_id", "state"),
    "AgentHello": ("friendly_name", "available_job_slots", "available_environments"),
    "AgentJobStarted": ("job_id",),
    "AgentJobDone": ("job_id", "result", "grade", "problems", "tests", "custom", "state", "archive", "stdout", "stderr"),
    "AgentJobSSHDebug": ("job_id", "host", "port", "user", "password"),
    "Ping": (), "Pong": (), "Unknown": (),
}
RESULTS = {"success", "failed", "error", "crash", "timeout", "overflow", "killed"}


def desc(v):
    r = repr(v)
    return "%s %s" % (type(v).__name__, r if len(r) <= 40 else r[:37] + "...")


def want(pred, what):
    return lambda p, v: [] if pred(v) else ["%s: expected %s, got %s" % (p, what, desc(v))]


def is_int(v): return isinstance(v, int) and not isinstance(v, bool)


STR = want(lambda v: isinstance(v, str), "str")
INT = want(is_int, "int")
NUM = want(lambda v: is_int(v) or isinstance(v, float), "int or float")
BOOL = want(lambda v: isinstance(v, bool), "bool")
FLOAT = want(lambda v: isinstance(v, float) and math.isfinite(v), "finite float (msgpack float64/32, not an integer)")
OPT_STR = want(lambda v: v is None or isinstance(v, str), "str or nil")
OPT_BYTES = want(lambda v: v is None or isinstance(v, bytes), "bytes (msgpack bin) or nil")
SP = want(lambda v: isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, str) for x in v), "[str, str]")
PORTS = want(lambda v: isinstance(v, tuple) and all(is_int(x) for x in v), "array of int")
# A problem value is [result, text], or a bare str: the grading container's set_problem_feedback() without a
# result stores a str, and the Python agent forwards container values unchanged.
PROBLEM = want(lambda v: isinstance(v, str) or (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, str) for x in v)),
               "[str, str] (or str)")


def deep(p, v):
    """Anything msgpack-native is fine except ext types (e.g. JS undefined/Date encoded as ext)."""
    if isinstance(v, (msgpack.ExtType, msgpack.Timestamp)):
        return ["%s: ext type %s (Python gets an ExtType/Timestamp object)" % (p, desc(v))]
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, tuple) else ()
    return [e for k, x in items for e in deep("%s[%r]" % (p, k), x)]


def str_map(check):
    def run(p, v):
        if not isinstance(v, dict):
            return ["%s: expected map, got %s" % (p, desc(v))]
        return [e for k, x in v.items()
                for e in ([] if isinstance(k, str) else ["%s: key %r is not str" % (p, k)]) + check("%s[%r]" % (p, k), x)]
    return run


# What the backend reads from each environment (KeyError if absent: id, created, advertised) plus what the
# Python docker agent always sends (ports, runtime; it also sends "title", checked when present).
ENV_KEYS = {"id": STR, "created": NUM, "ports": PORTS, "runtime": STR, "advertised": BOOL}


def env_entry(p, v):
    if not isinstance(v, dict):
        return ["%s: expected map, got %s" % (p, desc(v))]
    errs = [e for k, c in ENV_KEYS.items() for e in (c(p + "." + k, v[k]) if k in v else [p + ": missing " + k])]
    return errs + (STR(p + ".title", v["title"]) if "title" in v else []) + deep(p, v)


CHECKS = {  # agent -> backend messages: exactly the ones backend.handle_agent_message dispatches
    "AgentHello": {"friendly_name": STR, "available_job_slots": INT,
                   "available_environments": str_map(str_map(env_entry))},
    "AgentJobStarted": {"job_id": STR},
    "AgentJobDone": {"job_id": STR, "result": SP, "grade": FLOAT, "problems": str_map(PROBLEM),
                     "tests": str_map(deep), "custom": str_map(deep), "state": STR, "archive": OPT_BYTES,
                     "stdout": OPT_STR, "stderr": OPT_STR},
    "AgentJobSSHDebug": {"job_id": STR, "host": STR, "port": INT, "user": STR, "password": STR},
    "Pong": {},
}
assert all(tuple(CHECKS[t]) == FIELDS[t] for t in CHECKS)


def from_json(v):
    if isinstance(v, dict):
        if set(v) == {"$b64"}: return base64.b64decode(v["$b64"])
        if set(v) == {"$float"}: return float(v["$float"])
        if set(v) == {"$map"}: return {from_json(k): from_json(x) for k, x in v["$map"]}
        return {k: from_json(x) for k, x in v.items()}
    return [from_json(x) for x in v] if isinstance(v, list) else v


def to_json(v):
    if isinstance(v, (msgpack.ExtType, msgpack.Timestamp)): return {"$ext": repr(v)}
    if isinstance(v, bytes): return {"$bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()}
    if isinstance(v, float) and not math.isfinite(v): return {"$float": repr(v)}  # keep every line valid JSON
    if isinstance(v, dict): return {(k if isinstance(k, str) else repr(k)): to_json(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)): return [to_json(x) for x in v]
    return v


def pack(msg):
    """Declared fields first, in order, then unknown extras, then "@type" (as messages.dump() does)."""
    t = msg.get("@type")
    order = [f for f in FIELDS.get(t, ()) if f in msg] + [f for f in msg if f not in FIELDS.get(t, ()) and f != "@type"]
    return msgpack.packb(dict([(f, msg[f]) for f in order] + [("@type", t)]), use_bin_type=True)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Peer:
    def __init__(self, bind):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.ipv6 = True
        self.sock.bind(bind)
        endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        emit({"bound": endpoint, "port": int(endpoint.rsplit(":", 1)[1])})
        self.frames, self.cursor, self.identity, self.all_ok = [], 0, None, True
        self.hello, self.jobs_sent, self.jobs_done, self.ssh_sent = set(), set(), set(), set()
        self.ping_every, self.next_ping = 0, None

    def validate(self, ident, parts):
        """Return (type, message, errors, warnings) for one received multipart message."""
        if len(parts) != 1:
            return None, None, ["expected exactly one frame after the identity, got %d" % len(parts)], []
        try:
            msg = msgpack.unpackb(parts[0], use_list=False, strict_map_key=False, raw=False)
        except Exception as e:  # the backend's run loop would die here (invalid UTF-8, truncated, extra data...)
            return None, None, ["undecodable frame: %s: %s" % (type(e).__name__, e)], []
        if not isinstance(msg, dict) or not isinstance(msg.get("@type"), str):
            return None, msg, ["not a map with a str @type"], []
        t, errs, warns = msg["@type"], [], []
        if t not in CHECKS:
            why = "registered but not agent-sent" if t in FIELDS else "unknown"
            return t, msg, ["@type %r is %s: the backend raises TypeError and its run loop stops" % (t, why)], []
        fields = set(msg) - {"@type"}
        for f in sorted(fields - set(FIELDS[t]), key=repr): errs.append("unexpected field %r" % (f,))
        for f in FIELDS[t]:
            if f not in fields: errs.append("missing field %r" % f)
            else: errs += CHECKS[t][f](f, msg[f])
        job = msg.get("job_id")
        running = job in self.jobs_sent and job not in self.jobs_done
        if t == "AgentHello": self.hello.add(ident)
        elif t != "Pong" and ident not in self.hello: warns.append("identity has not said AgentHello")
        if t == "AgentJobStarted" and not running: errs.append("job %r is not running (backend KeyError)" % (job,))
        if t == "AgentJobSSHDebug":
            if not running: errs.append("job %r is not running (backend KeyError)" % (job,))
            if job in self.ssh_sent: errs.append("second AgentJobSSHDebug for job %r" % (job,))
            self.ssh_sent.add(job)
        if t == "AgentJobDone":
            if job in self.jobs_done: errs.append("second AgentJobDone for job %r" % (job,))
            elif not running: warns.append("job %r was not sent to the agent (ignored by the backend)" % (job,))
            if isinstance(msg.get("result"), tuple) and msg["result"] and msg["result"][0] not in RESULTS:
                warns.append("unusual result %r" % (msg["result"][0],))
            self.jobs_done.add(job)
        return t, msg, errs, warns

    def receive(self):
        ident, *parts = self.sock.recv_multipart()
        t, msg, errs, warns = self.validate(ident, parts)
        self.identity = ident
        self.all_ok &= not errs
        self.frames.append((t, msg))
        emit({"identity": ident.hex(), "type": t, "ok": not errs, "errors": errs, "warnings": warns,
              "message": to_json(msg)})

    def send(self, frame):
        if self.identity is None: raise RuntimeError("no agent has spoken yet")
        self.sock.send_multipart([self.identity, frame])

    def run_until(self, pred, seconds):
        """Receive (and ping) until pred() holds (True) or the time is up (False)."""
        deadline = time.monotonic() + seconds
        while not pred():
            now = time.monotonic()
            if self.ping_every and self.identity is not None and now >= self.next_ping:
                self.send(pack({"@type": "Ping"}))
                self.next_ping = now + self.ping_every
            if now >= deadline: return False
            limit = min(deadline, self.next_ping) if self.ping_every and self.identity is not None else deadline
            if self.sock.poll(max(0, int((limit - now) * 1000)) + 1): self.receive()
        return True

    def find(self, typ, match):
        for i in range(self.cursor, len(self.frames)):
            t, m = self.frames[i]
            if t == typ and all(to_json(m.get(k)) == v for k, v in match.items()):
                self.cursor = i + 1
                return True
        return False

    def step(self, s):
        if "wait" in s:
            if not self.run_until(lambda: self.find(s["wait"], s.get("match", {})), s.get("timeout", 10)):
                raise RuntimeError("no %s%s within %ss" % (s["wait"], " matching %s" % json.dumps(s["match"]) if "match" in s
                                                          else "", s.get("timeout", 10)))
        elif "send" in s:
            msg = from_json(s["send"])
            self.send(pack(msg))
            if msg.get("@type") == "BackendNewJob" and isinstance(msg.get("job_id"), str): self.jobs_sent.add(msg["job_id"])
        elif "send_raw" in s: self.send(from_json(s["send_raw"]))
        elif "sleep" in s: self.run_until(lambda: False, s["sleep"])
        elif "ping_every" in s: self.ping_every, self.next_ping = s["ping_every"], time.monotonic()
        elif "expect_count" in s:
            e = s["expect_count"]
            count = lambda: sum(1 for t, _ in self.frames if t == e["type"])
            if not self.run_until(lambda: count() >= e["count"], e.get("timeout", 10)):
                raise RuntimeError("%d %s received, expected at least %d" % (count(), e["type"], e["count"]))
        else: raise RuntimeError("unknown step %s" % json.dumps(s))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bind", required=True)
    ap.add_argument("--script", default="-")
    args = ap.parse_args()
    with (sys.stdin if args.script == "-" else open(args.script)) as f:
        steps = json.load(f)
    peer = Peer(args.bind)
    steps_ok = True
    try:
        for i, s in enumerate(steps):
            try:
                peer.step(s)
            except Exception as e:
                emit({"step": i, "error": "%s: %s" % (type(e).__name__, e)})
                steps_ok = False
                break
        while peer.sock.poll(0): peer.receive()  # account for what already arrived
    finally:
        peer.sock.close(linger=1000)
        peer.ctx.term()
    ok = steps_ok and peer.all_ok
    emit({"done": True, "ok": ok})
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
