/**
 * The pure parts of the defences against a grader's flood of requests: the log limiter's windows
 * and counts, the grading container's stdin under backpressure (a real stream that stops being
 * read), the caps on a job's run_student requests, and a student container's retval precedence.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { pino } from "pino";
import { LogLimiter } from "../src/log-limit.js";
import { studentRetval } from "../src/jobs/outcome.js";
import { GradingStdin } from "../workers/grading-stdin.js";
import { capRefusal, SOCKET_ID_MAX_BYTES, SOCKET_IDS_MAX, STUDENT_WAITING_MAX } from "../workers/student-caps.js";
import type { JobContext } from "../workers/job-context.js";

/** A pino logger whose lines land in `lines`. */
function capture(level = "info"): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

describe("LogLimiter", () => {
  test("so many lines a window, the others counted by message and told when the next window opens", () => {
    const { log, lines } = capture();
    let now = 0;
    const limiter = new LogLimiter(log, 3, () => now);
    for (let i = 0; i < 10; i++) limiter.warn(log, { i }, "a");
    limiter.warn(log, {}, "b");
    assert.deepEqual(lines.map((l) => l["msg"]), ["a", "a", "a"]);
    assert.equal(limiter.pending, 8);
    now = 999;
    limiter.warn(log, {}, "a");
    assert.equal(lines.length, 3, "still the same window");
    now = 1000;
    limiter.warn(log, {}, "c");
    assert.deepEqual(lines.slice(3).map((l) => l["msg"]), ["log lines suppressed", "c"]);
    assert.deepEqual(lines[3]!["suppressed"], { a: 8, b: 1 });
    assert.equal(lines[3]!["total"], 9);
    assert.equal(limiter.pending, 0);
  });

  test("flush tells what is left, once; nothing to tell writes nothing", () => {
    const { log, lines } = capture();
    const limiter = new LogLimiter(log, 1, () => 5);
    limiter.flush();
    assert.equal(lines.length, 0);
    limiter.warn(log, {}, "x");
    limiter.warn(log, {}, "x");
    limiter.flush();
    limiter.flush();
    assert.deepEqual(lines.map((l) => l["msg"]), ["x", "log lines suppressed"]);
  });

  test("a debug line the level hides takes none of the window's lines", () => {
    const { log, lines } = capture("info");
    const limiter = new LogLimiter(log, 1, () => 0);
    for (let i = 0; i < 5; i++) limiter.debug(log, {}, "hidden");
    limiter.warn(log, {}, "shown");
    assert.deepEqual(lines.map((l) => l["msg"]), ["shown"]);
    assert.equal(limiter.pending, 0);
  });
});

/** A writable that takes `take` bytes, then stops being read until `resume` is called. */
function stuckStream(take: number): { stream: Writable; got: Buffer[]; resume: () => void } {
  const got: Buffer[] = [];
  let taken = 0;
  let held: Array<() => void> = [];
  const stream = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, done) {
      got.push(chunk);
      taken += chunk.length;
      if (taken <= take) done();
      else held.push(done);
    },
  });
  return {
    stream, got,
    resume() {
      take = Infinity;
      const h = held;
      held = [];
      for (const done of h) done();
    },
  };
}

describe("GradingStdin", () => {
  test("once a write is not taken, frames wait in order, up to the bound, then `over`", async () => {
    const { stream, got, resume } = stuckStream(0);
    const stdin = new GradingStdin(stream, 10_000);
    const frame = (i: number): Buffer => Buffer.from(`frame ${String(i).padStart(5, "0")};`);
    const kinds: string[] = [];
    let i = 0;
    for (;;) {
      const how = stdin.write(frame(i));
      kinds.push(how);
      if (how === "over") break;
      i++;
    }
    assert.equal(kinds[0], "written");
    assert.ok(kinds.includes("waiting"));
    assert.ok(stdin.waitingFor <= 10_000 && stdin.waitingFor > 10_000 - 20, `${stdin.waitingFor}`);
    resume();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 10));
    const all = Buffer.concat(got).toString();
    const expected = Array.from({ length: i }, (_, k) => frame(k).toString()).join("");
    assert.equal(all, expected, "every frame taken, in order");
    assert.equal(stdin.waitingFor, 0);
    assert.equal(stdin.write(frame(i)), "written");
  });

  test("a destroyed stdin takes nothing more", () => {
    const { stream } = stuckStream(Infinity);
    const stdin = new GradingStdin(stream);
    stdin.destroy();
    assert.equal(stdin.write(Buffer.from("x")), "closed");
  });
});

/** The fields of a job context that the caps read. */
function ctxWith(students: number, used: number, waiting: number): JobContext {
  return {
    students: new Map(Array.from({ length: students }, (_, i) => [`s${i}`, {}])),
    usedSockets: new Set(Array.from({ length: used }, (_, i) => `u${i}`)),
    studentSlots: { running: 4, waiting: Array.from({ length: waiting }, () => () => {}) },
  } as unknown as JobContext;
}

describe("caps on a job's run_student requests", () => {
  test("a new id under every cap is let through", () => {
    assert.equal(capRefusal(ctxWith(3, 10, 0), "pabcdefgh"), null);
    assert.equal(capRefusal(ctxWith(3, 10, 0), "x".repeat(SOCKET_ID_MAX_BYTES)), null);
  });
  test("an id used before, running or over", () => {
    assert.match(capRefusal(ctxWith(3, 10, 0), "s1")!, /used already/);
    assert.match(capRefusal(ctxWith(3, 10, 0), "u9")!, /used already/);
  });
  test("an id too long to name a socket file (bytes, not characters)", () => {
    assert.match(capRefusal(ctxWith(0, 0, 0), "x".repeat(SOCKET_ID_MAX_BYTES + 1))!, /too long/);
    assert.match(capRefusal(ctxWith(0, 0, 0), "é".repeat(SOCKET_ID_MAX_BYTES / 2 + 1))!, /too long/);
  });
  test("past the job's socket ids, and past its waiting requests", () => {
    assert.match(capRefusal(ctxWith(4, SOCKET_IDS_MAX - 4, 0), "new")!, /socket ids/);
    assert.equal(capRefusal(ctxWith(4, SOCKET_IDS_MAX - 5, 0), "new"), null);
    assert.match(capRefusal(ctxWith(4, 0, STUDENT_WAITING_MAX), "new")!, /waiting/);
    assert.equal(capRefusal(ctxWith(4, 0, STUDENT_WAITING_MAX - 1), "new"), null);
  });
});

describe("a student container's retval", () => {
  test("out of memory wins over a timeout, as in INGInious; either wins over the exit status", () => {
    assert.equal(studentRetval({ timeout: true, outOfMemory: true, exitCode: 137 }), 252);
    assert.equal(studentRetval({ timeout: true, outOfMemory: false, exitCode: 137 }), 253);
    assert.equal(studentRetval({ timeout: false, outOfMemory: true, exitCode: 0 }), 252);
    assert.equal(studentRetval({ timeout: false, outOfMemory: false, exitCode: 3 }), 3);
  });
});
