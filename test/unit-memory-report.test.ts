/** Where the agent's memory is: pool threads answer the main thread's query, and the soak's summary splits RSS growth. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { askMemory } from "../src/memory-report.js";
import { growthSummary, type MemorySample } from "../bench/soak-memory.js";

const MODULE = new URL("../src/memory-report.js", import.meta.url).href;

/** A thread like a pool thread: it answers when stats are requested (`stats`), and says when it listens. */
async function thread(stats: boolean): Promise<Worker> {
  const env = { ...process.env, INGINIOUS_AGENT_STATS: stats ? "/nowhere" : "" };
  const w = new Worker(
    `const { parentPort } = require("node:worker_threads");
     import(${JSON.stringify(MODULE)}).then((m) => { m.answerMemoryQueries(); parentPort.postMessage("listening"); });
     setInterval(() => {}, 1000);`,
    { eval: true, env },
  );
  await once(w, "message");
  return w;
}

test("each pool thread that is asked answers with its own heap figures; a thread that is not asked stays silent", async () => {
  const answering = await Promise.all([thread(true), thread(true)]);
  const silent = await thread(false);
  try {
    const started = Date.now();
    const m = await askMemory(() => 2, 5000);
    assert.ok(Date.now() - started < 4000, "returns as soon as the expected threads answered");
    assert.deepEqual(m.threads.map((t) => t.threadId), answering.map((w) => w.threadId).sort((a, b) => a - b));
    for (const t of m.threads) {
      assert.ok(t.heapTotal >= t.heapUsed && t.heapUsed > 0, `thread ${t.threadId} heap figures`);
      assert.ok(t.external >= t.arrayBuffers);
      assert.ok(t.newSpace > 0 && t.oldSpace > 0 && t.newSpace + t.oldSpace <= t.heapTotal, "V8's generations are parts of the heap");
    }
    assert.ok(m.main.heapUsed > 0);
    // a thread gone since: the query ends at its deadline with those that answered
    await answering[1].terminate();
    const later = await askMemory(() => 2, 300);
    assert.deepEqual(later.threads.map((t) => t.threadId), [answering[0].threadId]);
  } finally {
    await Promise.all([...answering, silent].map((w) => w.terminate()));
  }
});

test("with no pool thread alive, the query does not wait", async () => {
  const started = Date.now();
  const m = await askMemory(() => 0, 5000);
  assert.deepEqual(m.threads, []);
  assert.ok(Date.now() - started < 4000);
});

function sample(jobs: number, parts: { main: number; pool: number; native: number }): MemorySample {
  return {
    jobs, rssMb: parts.main + parts.pool + parts.native + 20, threads: 17, poolThreads: 4,
    mainHeapUsedMb: parts.main - 2, mainHeapTotalMb: parts.main, mainExternalMb: 10, mainArrayBuffersMb: 0,
    poolHeapUsedMb: parts.pool - 2, poolHeapTotalMb: parts.pool, poolExternalMb: 10, poolArrayBuffersMb: 0,
    nativeMb: parts.native, newSpaceMb: 4, oldSpaceMb: parts.main + parts.pool - 10, perThread: [],
  };
}

test("the soak's summary says which part grew after job 500, and fails growth over 5 %", () => {
  const growing = Array.from({ length: 20 }, (_, i) => sample((i + 1) * 100, { main: 20, pool: 60, native: 50 + i * 2 }));
  const g = growthSummary(growing, 2000)!;
  assert.equal(g.fromJobs, 500);
  assert.equal(g.toJobs, 2000);
  assert.equal(g.byPart.nativeMb, 30);
  assert.equal(g.byPart.rssMb, 30);
  assert.equal(g.byPart.poolHeapTotalMb, 0);
  assert.equal(g.slopeSecondHalf.nativeMb, 20, "2 MB per 100 jobs");
  assert.equal(g.pass, false);
  assert.match(g.text, /^RSS .* native \+30/);
  const flat = Array.from({ length: 20 }, (_, i) => sample((i + 1) * 100, { main: 20, pool: 60 + (i % 2), native: 50 }));
  assert.equal(growthSummary(flat, 2000)!.pass, true);
});
