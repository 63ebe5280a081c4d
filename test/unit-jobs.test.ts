/**
 * Unit tests for a job's parameters, its outcome (the one AgentJobDone) and its lifecycle bookkeeping.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { JobParametersError, parseJobParameters } from "../src/jobs/job-params.js";
import { collectResult, composeOutcome, defaultGrade, jobDone, runOutcome, type JobFacts, type RunFacts } from "../src/jobs/outcome.js";
import { decodeJobDone, encodeAgentMessage } from "../src/protocol/messages.js";
import { pack } from "../src/protocol/msgpack.js";
import { Job, RecentJobs } from "../src/jobs/job.js";
import type { CheckedResult, GradingOutcome } from "../src/jobs/job-task.js";

describe("parseJobParameters", () => {
  test("what the INGInious frontend sends", () => {
    assert.deepEqual(
      parseJobParameters({ run_cmd: null, network_grading: false, limits: { time: 20, hard_time: 60, memory: 1024, disk: 1024 } }),
      { limits: { time: 20, hardTime: 60, memoryMb: 1024, diskMb: 1024 }, networkGrading: false, runCmd: null },
    );
  });

  test("defaults: 30 s CPU, 3x wall, 200 MB, no disk, no network, no run_cmd", () => {
    assert.deepEqual(parseJobParameters({}), {
      limits: { time: 30, hardTime: 90, memoryMb: 200, diskMb: null }, networkGrading: false, runCmd: null,
    });
  });

  test("hard_time missing, nil or 0 is three times time", () => {
    for (const hard of [undefined, null, 0]) {
      assert.equal(parseJobParameters({ limits: { time: 7, hard_time: hard } }).limits.hardTime, 21, String(hard));
    }
  });

  test("numbers are read like Python's int(): floats truncated, integer strings parsed", () => {
    const p = parseJobParameters({ limits: { time: 2.9, hard_time: "10", memory: " 64 " } });
    assert.deepEqual(p.limits, { time: 2, hardTime: 10, memoryMb: 64, diskMb: null });
  });

  test("non-numeric limits are refused", () => {
    for (const limits of [{ time: "abc" }, { time: "1.5" }, { memory: [] }, { hard_time: {} }, { time: Infinity }]) {
      assert.throws(() => parseJobParameters({ limits }), JobParametersError, JSON.stringify(limits));
    }
  });

  test("limits that are not a map are refused", () => {
    for (const limits of [[], "x", 3]) {
      assert.throws(() => parseJobParameters({ limits }), JobParametersError);
    }
  });

  test("nil limits means defaults", () => {
    assert.equal(parseJobParameters({ limits: null }).limits.time, 30);
  });

  test("non-positive time limits are refused", () => {
    assert.throws(() => parseJobParameters({ limits: { time: 0 } }), JobParametersError);
    assert.throws(() => parseJobParameters({ limits: { time: -5 } }), JobParametersError);
    assert.throws(() => parseJobParameters({ limits: { time: 5, hard_time: -1 } }), JobParametersError);
  });

  test("memory is passed through as asked (the 20 MB floor is applied by the agent)", () => {
    assert.equal(parseJobParameters({ limits: { memory: 5 } }).limits.memoryMb, 5);
  });

  test("network_grading is truthy-tested and run_cmd must be a string", () => {
    assert.equal(parseJobParameters({ network_grading: true }).networkGrading, true);
    assert.equal(parseJobParameters({ network_grading: 1 }).networkGrading, true);
    assert.equal(parseJobParameters({ run_cmd: "python3 run.py" }).runCmd, "python3 run.py");
    assert.throws(() => parseJobParameters({ run_cmd: 3 }), JobParametersError);
  });

  test("unknown keys such as ssh_allowed are ignored", () => {
    assert.doesNotThrow(() => parseJobParameters({ ssh_allowed: true, whatever: { x: 1 } }));
  });
});

const facts = (over: Partial<JobFacts> = {}): JobFacts => ({
  jobId: "j1", previousState: "prev", stoppedBy: null, ...over,
});

const checked = (over: Partial<CheckedResult> = {}): CheckedResult => ({
  result: "success", text: "well done", grade: null, problems: { q1: ["success", "ok"] }, tests: { t: 1 },
  custom: { c: 2 }, state: "new-state", archive: Buffer.from([1, 2]), stdout: "out", stderr: "err", ...over,
});

const resultOutcome = (over: Partial<{ timeout: boolean; oomKilled: boolean; result: CheckedResult }> = {}): GradingOutcome => ({
  kind: "result", result: checked(), timeout: false, oomKilled: false, ...over,
});

describe("composeOutcome", () => {
  test("a plain result is passed through with the container's state", () => {
    const d = composeOutcome(facts(), resultOutcome());
    assert.deepEqual(d, {
      type: "AgentJobDone", job_id: "j1", result: ["success", "well done"], grade: 100, problems: { q1: ["success", "ok"] },
      tests: { t: 1 }, custom: { c: 2 }, state: "new-state", archive: Buffer.from([1, 2]), stdout: "out", stderr: "err",
    });
  });

  test("default grade: 100 for success, 0 otherwise; a given grade wins", () => {
    assert.equal(composeOutcome(facts(), resultOutcome({ result: checked({ result: "failed" }) })).grade, 0);
    assert.equal(composeOutcome(facts(), resultOutcome({ result: checked({ result: "error" }) })).grade, 0);
    assert.equal(composeOutcome(facts(), resultOutcome({ result: checked({ grade: 55.5 }) })).grade, 55.5);
    assert.equal(composeOutcome(facts(), resultOutcome({ result: checked({ result: "failed", grade: 12 }) })).grade, 12);
  });

  test("a given grade of 0 on success stays 0", () => {
    assert.equal(composeOutcome(facts(), resultOutcome({ result: checked({ grade: 0 }) })).grade, 0);
  });

  // The Python agent's handle_job_closing: its one slot per container (kill or OOM, the last one
  // written; the die handler writes the OOM last when the engine says OOMKilled) wins over its
  // timeout watcher.
  test("an OOM-killed container is an overflow whatever else happened, and keeps the previous state", () => {
    for (const stoppedBy of [null, "killed", "overflow"] as const) {
      const d = composeOutcome(facts({ stoppedBy }), resultOutcome({ timeout: true, oomKilled: true }));
      assert.deepEqual(d.result, ["overflow", ""], `stoppedBy ${stoppedBy}`);
      assert.equal(d.state, "prev");
      assert.equal(d.grade, 0);
      assert.deepEqual(d.problems, {});
      assert.deepEqual(d.tests, {});
      assert.equal(d.archive, null);
    }
  });

  test("a kill wins over a timeout and over the result, and keeps the previous state", () => {
    for (const timeout of [false, true]) {
      const d = composeOutcome(facts({ stoppedBy: "killed" }), resultOutcome({ timeout }));
      assert.deepEqual(d.result, ["killed", ""]);
      assert.equal(d.state, "prev");
      assert.equal(d.grade, 0);
      assert.deepEqual(d.problems, {});
      assert.equal(d.archive, null);
    }
  });

  test("an oom event (the last stop) wins over a timeout and over the result", () => {
    for (const timeout of [false, true]) {
      const d = composeOutcome(facts({ stoppedBy: "overflow" }), resultOutcome({ timeout }));
      assert.deepEqual(d.result, ["overflow", ""]);
      assert.equal(d.state, "prev");
      assert.equal(d.grade, 0);
    }
  });

  test("a timeout wins over the result", () => {
    const d = composeOutcome(facts(), resultOutcome({ timeout: true }));
    assert.deepEqual(d.result, ["timeout", ""]);
    assert.equal(d.state, "prev");
    assert.equal(d.grade, 0);
  });

  test("overflow from an oom event or an OOM-killed container wins over the result", () => {
    const a = composeOutcome(facts({ stoppedBy: "overflow" }), resultOutcome());
    const b = composeOutcome(facts(), resultOutcome({ oomKilled: true }));
    for (const d of [a, b]) {
      assert.deepEqual(d.result, ["overflow", ""]);
      assert.equal(d.state, "prev");
      assert.equal(d.grade, 0);
      assert.deepEqual(d.tests, {});
    }
  });

  test("no result or a worker crash is a crash with its text and the previous state", () => {
    for (const kind of ["no-result", "crash"] as const) {
      const d = composeOutcome(facts(), { kind, text: "why", timeout: false, oomKilled: false });
      assert.deepEqual(d.result, ["crash", "why"]);
      assert.equal(d.state, "prev");
      assert.equal(d.grade, 0);
    }
  });

  test("killed also wins over a crash", () => {
    const d = composeOutcome(facts({ stoppedBy: "killed" }), { kind: "crash", text: "boom", timeout: true, oomKilled: false });
    assert.deepEqual(d.result, ["killed", ""]);
  });

  test("a timeout also wins over a missing result", () => {
    const d = composeOutcome(facts(), { kind: "no-result", text: "nothing", timeout: true, oomKilled: false });
    assert.deepEqual(d.result, ["timeout", ""]);
  });
});

const run = (over: Partial<RunFacts> = {}): RunFacts => ({
  jobId: "j1", timeout: false, oomKilled: false, diskExceededBytes: null, engineLost: null, fatal: null, streamError: null,
  // the container stream hands the worker a result as its msgpack bytes
  rawResult: pack({ result: "success", text: "fine", grade: 80, state: "s2", stdout: "o" }), ...over,
});

describe("runOutcome (the worker's part of the precedence)", () => {
  test("a readable result is checked and encoded as the job's AgentJobDone", async () => {
    const o = await runOutcome(run({ timeout: true }));
    assert.equal(o.kind, "encoded-result");
    if (o.kind !== "encoded-result") return;
    assert.deepEqual([o.result, o.grade, o.timeout, o.oomKilled], ["success", 80, true, false]);
    assert.deepEqual(decodeJobDone(o.frame), {
      type: "AgentJobDone", job_id: "j1", result: ["success", "fine"], grade: 80, problems: {}, tests: {}, custom: {},
      state: "s2", archive: null, stdout: "o", stderr: "",
    });
  });

  test("the encoded frame is the bytes of the same AgentJobDone composeOutcome gives for the checked result", async () => {
    const o = await runOutcome(run());
    const direct = composeOutcome(facts(), resultOutcome({ result: checked({
      result: "success", text: "fine", grade: 80, problems: {}, tests: {}, custom: {}, state: "s2", archive: null, stdout: "o", stderr: "",
    }) }));
    assert.ok(o.kind === "encoded-result" && direct.type === "AgentJobDone");
    assert.deepEqual(Buffer.from(o.frame), encodeAgentMessage(direct));
  });

  test("a result that fails its check is a crash with the check's text", async () => {
    const o = await runOutcome(run({ rawResult: pack({ result: "success", bogus: 1 }) }));
    assert.equal(o.kind, "crash");
    assert.deepEqual(o, {
      kind: "crash", text: "The grader did not return a readable output : 'bogus'", detail: 'unknown key "bogus"', timeout: false, oomKilled: false,
    });
    const done = composeOutcome(facts(), o);
    assert.ok(done.type === "AgentJobDone");
    assert.deepEqual([done.result, done.detail], [["crash", "The grader did not return a readable output : 'bogus'"], 'unknown key "bogus"'], "the detail for the log line");
    assert.equal(encodeAgentMessage(done).includes(Buffer.from("unknown key")), false, "the detail is never sent");
    assert.equal((await collectResult("j1", "not a map", { timeout: false, oomKilled: true })).kind, "crash");
  });

  test("the disk limit wins over a lost engine, a fatal error, a stream error and the result", async () => {
    const o = await runOutcome(run({ diskExceededBytes: 5 << 20, engineLost: "gone", fatal: "f", streamError: "s", oomKilled: true }));
    assert.deepEqual(o, { kind: "crash", text: "disk limit", timeout: false, oomKilled: true, diskExceededBytes: 5 << 20 });
  });

  test("a lost engine wins over fatal and stream errors when no result came, and yields to a result", async () => {
    const o = await runOutcome(run({ engineLost: "socket hang up", fatal: "f", rawResult: undefined }));
    assert.deepEqual(o, {
      kind: "crash", text: "The agent lost contact with the Docker engine while the job ran (socket hang up). Please retry.",
      timeout: false, oomKilled: false,
    });
    assert.equal((await runOutcome(run({ engineLost: "socket hang up" }))).kind, "encoded-result");
    assert.deepEqual(await runOutcome(run({ engineLost: "x", fatal: "why" })), { kind: "crash", text: "why", timeout: false, oomKilled: false });
  });

  test("fatal > stream error > no result > result", async () => {
    assert.deepEqual(await runOutcome(run({ fatal: "bad socket id", streamError: "s" })),
      { kind: "crash", text: "bad socket id", timeout: false, oomKilled: false });
    assert.deepEqual(await runOutcome(run({ streamError: "message too big", rawResult: undefined })),
      { kind: "crash", text: "The grader's output could not be read: message too big.", timeout: false, oomKilled: false });
    assert.deepEqual(await runOutcome(run({ rawResult: undefined, timeout: true })),
      { kind: "no-result", text: "The grader did not return a readable output : Grading container did not return any result.", timeout: true, oomKilled: false });
  });

  test("output the Python agent could not read either: its no-result text when no result came, ours in the detail", async () => {
    assert.deepEqual(await runOutcome(run({ streamError: "not msgpack", streamUnreadable: true, rawResult: undefined })), {
      kind: "crash", text: "The grader did not return a readable output : Grading container did not return any result.",
      detail: "The grader's output could not be read: not msgpack.", timeout: false, oomKilled: false,
    });
    // a result came before it: the Python agent would have used it, this agent does not (ours)
    assert.deepEqual(await runOutcome(run({ streamError: "not msgpack", streamUnreadable: true })),
      { kind: "crash", text: "The grader's output could not be read: not msgpack.", timeout: false, oomKilled: false });
  });

  test("collect is called only when the result decides, with what was seen", async () => {
    const calls: unknown[] = [];
    const collect = (raw: unknown, seen: object): Promise<GradingOutcome> => (calls.push([raw, seen]), Promise.resolve({ kind: "crash", text: "c", timeout: false, oomKilled: false }));
    await runOutcome(run({ fatal: "f" }), collect);
    await runOutcome(run({ rawResult: undefined }), collect);
    assert.equal(calls.length, 0);
    await runOutcome(run({ rawResult: 7, oomKilled: true }), collect);
    assert.deepEqual(calls, [[7, { timeout: false, oomKilled: true }]]);
  });

  test("with the main thread's head: timeout and overflow win over the disk limit, which names its size", async () => {
    const disk = await runOutcome(run({ diskExceededBytes: 3 * 1024 * 1024 }));
    assert.deepEqual(composeOutcome(facts(), disk).result, ["overflow", "The job wrote too much to disk (3 MB, over its limit)."]);
    assert.deepEqual(composeOutcome(facts({ stoppedBy: "overflow" }), disk).result, ["overflow", ""]);
    assert.deepEqual(composeOutcome(facts(), await runOutcome(run({ diskExceededBytes: 1, timeout: true }))).result, ["timeout", ""]);
    assert.deepEqual(composeOutcome(facts({ stoppedBy: "killed" }), await runOutcome(run({ diskExceededBytes: 1 }))).result, ["killed", ""]);
  });
});

describe("jobDone and defaultGrade", () => {
  test("defaultGrade", () => {
    assert.equal(defaultGrade("success", null), 100);
    for (const k of ["failed", "error", "crash", "timeout", "overflow", "killed"] as const) assert.equal(defaultGrade(k, null), 0);
    assert.equal(defaultGrade("crash", 30), 30);
  });

  test("jobDone without extras: empty maps, nil archive/stdout/stderr", () => {
    assert.deepEqual(jobDone("j", "crash", "no task", "st"), {
      type: "AgentJobDone", job_id: "j", result: ["crash", "no task"], grade: 0, problems: {}, tests: {}, custom: {},
      state: "st", archive: null, stdout: null, stderr: null,
    });
  });

  test("jobDone keeps empty stdout/stderr as empty strings", () => {
    const d = jobDone("j", "success", "", "", { stdout: "", stderr: "" });
    assert.equal(d.stdout, "");
    assert.equal(d.stderr, "");
    assert.equal(d.grade, 100);
  });
});

describe("Job and RecentJobs", () => {
  test("a job closes exactly once", () => {
    const j = new Job("j1", "st", "/tmp/x");
    assert.equal(j.phase, "queued");
    j.phase = "running";
    assert.equal(j.close(), true);
    assert.equal(j.phase, "closed");
    assert.equal(j.close(), false);
    assert.equal(j.close(), false);
  });

  test("a queued job can be closed directly", () => {
    const j = new Job("j2", "", "/tmp/y");
    assert.equal(j.close(), true);
    assert.equal(j.phase, "closed");
  });

  test("RecentJobs remembers up to its capacity, oldest forgotten first", () => {
    const r = new RecentJobs(3);
    for (const id of ["a", "b", "c"]) r.add(id);
    assert.ok(r.has("a") && r.has("b") && r.has("c"));
    r.add("d");
    assert.equal(r.has("a"), false);
    assert.ok(r.has("b") && r.has("c") && r.has("d"));
    r.add("e");
    assert.equal(r.has("b"), false);
    assert.equal(r.has("x"), false);
  });

  test("adding an id twice does not take two places", () => {
    const r = new RecentJobs(2);
    r.add("a");
    r.add("a");
    r.add("b");
    assert.ok(r.has("a") && r.has("b"));
    r.add("c");
    assert.equal(r.has("a"), false);
    assert.ok(r.has("b") && r.has("c"));
  });

  test("the default capacity is 10000", () => {
    const r = new RecentJobs();
    for (let i = 0; i < 10001; i++) r.add(`j${i}`);
    assert.equal(r.has("j0"), false);
    assert.equal(r.has("j1"), true);
    assert.equal(r.has("j10000"), true);
  });
});

import { findOrphans } from "../src/docker/reconcile.js";

test("reconciliation removes only old containers that no running job owns", () => {
  const listed = [
    { Id: "owned", Created: 100 },
    { Id: "orphan-old", Created: 100 },
    { Id: "orphan-new", Created: 190 },
  ];
  assert.deepEqual(findOrphans(listed, new Set(["owned"]), 200, 60), ["orphan-old"]);
  assert.deepEqual(findOrphans([], new Set(), 200), []);
});
