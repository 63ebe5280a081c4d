/**
 * A grader flooding the agent with `run_student` requests, against the real engine, with one
 * pool thread for two jobs: 100,000 distinct socket ids leave the agent's RSS near its usual
 * level, every request is answered, and the other job on the thread grades; one socket id asked
 * for 100,000 times costs a bounded number of log lines a second, with a count of the others,
 * and so do requests the main thread refuses for memory; a grader that stops reading its stdin
 * while it floods ends as `crash`; pool threads run under their heap limits.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { newJob } from "./helpers/backend.js";
import { tempDir } from "./helpers/agent-process.js";
import { eventually, SAMPLE_IMAGE } from "./helpers/docker.js";
import { startSession, type Session } from "./helpers/session.js";
import { JOB_FLOOD_LINES_PER_SECOND } from "../src/log-limit.js";
import { POOL_THREAD_OLD_HEAP_MB, POOL_THREAD_YOUNG_HEAP_MB } from "../src/config.js";
import type { MemoryBreakdown } from "../src/memory-report.js";
import { STUDENT_WAITING_MAX } from "../workers/student-caps.js";

type Done = Record<string, unknown>;
const result = (d: Done): string[] => d["result"] as string[];
const RAW = "inginious-agent-docker-test/test-raw:latest";
const FLOOD = 100_000;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? parseInt(m[1]!, 10) / 1024 : NaN;
}

/** The figures of a flood job's text: answers=N retval254=M ... */
function figures(text: string): Record<string, number> {
  return Object.fromEntries([...text.matchAll(/(\w+)=([\d.]+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

describe("a grader flooding run_student, two jobs on one pool thread", () => {
  let s: Session;
  before(async () => {
    s = await startSession(["--pool-threads", "1", "--concurrency", "2"], { images: [SAMPLE_IMAGE, RAW] });
  });
  afterEach(() => s.assertClean());
  after(() => s?.end());

  const flood = (id: string, inputdata: Record<string, unknown>): Promise<void> =>
    s.backend.send(newJob(id, { task_id: "raw", environment: "test-raw", inputdata, limits: { time: 60, hard_time: 120, memory: 200 } }));

  test("100,000 distinct socket ids: every one answered 254, RSS within 50 MB of its usual level, the other job grades", async (t) => {
    for (const id of ["usual-1", "usual-2", "usual-3"]) {
      await s.backend.send(newJob(id, { task_id: "success", inputdata: { q1: "x" } }));
      assert.equal(result(await s.backend.done(id, 60_000))[0], "success");
    }
    await new Promise((r) => setTimeout(r, 2000));
    const usual = rssMb(s.agent.pid);

    await s.backend.send(newJob("beside", { task_id: "hold", inputdata: { n: "7" }, limits: { time: 60, hard_time: 120 } }));
    const folder = await jobFolder(s, "beside");
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(s.agent.pid))), 100);
    try {
      await flood("flood", { mode: "flood", count: String(FLOOD) });
      const d = await s.backend.done("flood", 180_000);
      await new Promise((r) => setTimeout(r, 1000));
      t.diagnostic(`${result(d)[1]}; RSS usual ${usual.toFixed(1)} MB, peak ${peak.toFixed(1)} MB`);
      assert.equal(result(d)[0], "success", result(d)[1]);
      const f = figures(result(d)[1]!);
      assert.equal(f["answers"], FLOOD, result(d)[1]);
      assert.equal(f["retval254"], FLOOD, result(d)[1]);
    } finally {
      clearInterval(sampler);
    }
    assert.ok(peak - usual <= 50, `RSS went from ${usual.toFixed(1)} to ${peak.toFixed(1)} MB`);
    // the other job on the same pool thread still grades
    writeFileSync(path.join(s.tmpdir, folder, "task", "student", "release"), "");
    assert.deepEqual(result(await s.backend.done("beside", 60_000)), ["success", "n=7"]);
  });

  test("one socket id asked for 100,000 times: at most so many warnings a second, the others counted", async (t) => {
    const from = s.agent.logs.length;
    const began = Date.now();
    await flood("repeat", { mode: "flood", count: String(FLOOD), same: "yes" });
    const d = await s.backend.done("repeat", 180_000);
    const seconds = (Date.now() - began) / 1000;
    assert.equal(result(d)[0], "success", result(d)[1]);
    assert.equal(figures(result(d)[1]!)["retval254"], FLOOD, result(d)[1]);
    // the summary of the last window comes with the end of the job's cleanup, after its result
    await s.assertClean();
    await new Promise((r) => setTimeout(r, 500));
    const lines = s.agent.logs.slice(from).filter((l) => l.job === "repeat");
    const warned = lines.filter((l) => l.msg === "run_student for a socket id the job used already: 254").length;
    const summaries = lines.filter((l) => l.msg === "log lines suppressed");
    const suppressed = summaries.reduce((n, l) => n + ((l["suppressed"] as Record<string, number>)["run_student for a socket id the job used already: 254"] ?? 0), 0);
    t.diagnostic(`${lines.length} lines for the job in ${seconds.toFixed(1)} s: ${warned} warnings, ${summaries.length} summaries, ${suppressed} suppressed`);
    // the first request is refused by its bind check (no such socket), the others as repeats: each one written or counted
    assert.equal(warned + suppressed, FLOOD - 1);
    const bound = (Math.ceil(seconds) + 1) * (JOB_FLOOD_LINES_PER_SECOND + 1);
    assert.ok(lines.length <= bound + 10, `${lines.length} log lines for the job in ${seconds.toFixed(1)} s (bound ${bound})`);
  });

  test("a grader that floods and never reads its stdin ends as crash, with a text that says so", async () => {
    await flood("unread", { mode: "flood-unread", count: "400000" });
    const d = await s.backend.done("unread", 180_000);
    assert.equal(result(d)[0], "crash", result(d)[1]);
    assert.match(result(d)[1]!, /stopped reading its standard input: more than 8 MiB of the agent's messages to it were waiting/);
  });
});

describe("a flood whose student containers the main thread refuses for memory", () => {
  let s: Session;
  before(async () => {
    // 300 MB for jobs: a job of 200 MB leaves no room for a student container of its size
    const hostMb = Math.floor(os.totalmem() / 1024 / 1024);
    s = await startSession(["--memory-reserve", String(hostMb - 300)], { images: [SAMPLE_IMAGE, RAW] });
  });
  afterEach(() => s.assertClean());
  after(() => s?.end());

  test("the main thread's lines are bounded too, and every request is told once", async (t) => {
    const count = 20_000;
    const from = s.agent.logs.length;
    const began = Date.now();
    await s.backend.send(newJob("no-room", {
      task_id: "raw", environment: "test-raw", inputdata: { mode: "flood", count: String(count) }, limits: { time: 60, hard_time: 120, memory: 200 },
    }));
    const d = await s.backend.done("no-room", 180_000);
    const seconds = (Date.now() - began) / 1000;
    assert.equal(figures(result(d)[1]!)["retval254"], count, result(d)[1]);
    await s.assertClean();
    await new Promise((r) => setTimeout(r, 500));
    const lines = s.agent.logs.slice(from).filter((l) => l.job === "no-room");
    const told = (msg: string): number => lines.filter((l) => l.msg === msg).length
      + lines.filter((l) => l.msg === "log lines suppressed").reduce((n, l) => n + ((l["suppressed"] as Record<string, number>)[msg] ?? 0), 0);
    const noRoom = told("student container refused: its memory could never fit beside its job's");
    t.diagnostic(`${lines.length} lines for the job in ${seconds.toFixed(1)} s; refused for memory: ${noRoom}`);
    // at least the requests that found the slots and the waiting line free reach it
    assert.ok(noRoom >= STUDENT_WAITING_MAX, `only ${noRoom} requests reached the main thread`);
    // each of those the worker answers 254 with a line of its own; the others were refused by a cap
    assert.equal(told("no memory for the student container"), noRoom);
    const capped = lines.filter((l) => /^run_student past/.test(l.msg)).map((l) => l.msg);
    const cappedTold = [...new Set([...capped, ...lines.flatMap((l) => Object.keys((l["suppressed"] as Record<string, number> | undefined) ?? {}))])]
      .filter((m) => /^run_student past/.test(m)).reduce((n, m) => n + told(m), 0);
    assert.equal(noRoom + cappedTold, count);
    // the worker's limiter and the main thread's, each so many lines a second and a summary
    const bound = 2 * (Math.ceil(seconds) + 1) * (JOB_FLOOD_LINES_PER_SECOND + 1);
    assert.ok(lines.length <= bound + 10, `${lines.length} log lines for the job in ${seconds.toFixed(1)} s (bound ${bound})`);
  });
});

describe("pool threads", () => {
  test("run under the heap limits of config.ts (V8's default here would be 4 GB a thread)", async () => {
    const stats = tempDir("stats");
    const file = path.join(stats.path, "stats.json");
    const s = await startSession([], { env: { INGINIOUS_AGENT_STATS: file } });
    try {
      await s.backend.send(newJob("one", { task_id: "success", inputdata: { q1: "x" } }));
      assert.equal(result(await s.backend.done("one", 60_000))[0], "success");
      s.agent.signal("SIGUSR2");
      await eventually(() => assert.ok(existsSync(file), "no stats file yet"));
      const { threads } = (JSON.parse(readFileSync(file, "utf8")) as { memory: MemoryBreakdown }).memory;
      assert.ok(threads.length >= 1, "no pool thread answered");
      // V8's heap limit is the old generation and 1.5 x the young one
      const expected = POOL_THREAD_OLD_HEAP_MB + 1.5 * POOL_THREAD_YOUNG_HEAP_MB;
      for (const t of threads) assert.equal(t.heapLimit / 1048576, expected, `thread ${t.threadId}`);
    } finally {
      await s.end();
      stats.remove();
    }
  });
});

/** The job directory of a running job (named after its id). */
async function jobFolder(s: Session, jobId: string): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const found = readdirSync(s.tmpdir).find((d) => d.startsWith(`job-${jobId}-`));
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no job directory for ${jobId}`);
}
