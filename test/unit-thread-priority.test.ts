import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { MAIN_THREAD_NICE, wantedNice } from "../src/ops/thread-priority.js";

const MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../src/ops/thread-priority.js");

test("INGINIOUS_AGENT_MAIN_NICE chooses the main thread's nice value; bad values are refused", () => {
  assert.equal(wantedNice({}), MAIN_THREAD_NICE);
  assert.equal(wantedNice({ INGINIOUS_AGENT_MAIN_NICE: " " }), MAIN_THREAD_NICE);
  assert.equal(wantedNice({ INGINIOUS_AGENT_MAIN_NICE: "-10" }), -10);
  assert.equal(wantedNice({ INGINIOUS_AGENT_MAIN_NICE: "0" }), 0);
  for (const bad of ["-21", "20", "1.5", "high"]) {
    assert.throws(() => wantedNice({ INGINIOUS_AGENT_MAIN_NICE: bad }), /INGINIOUS_AGENT_MAIN_NICE must be an integer from -20 to 19, got/);
  }
});

/** Runs the priority change in a fresh process; returns what it said and every thread's nice value after. */
interface ChildReport { change: { kind: string; nice: number; threads?: number; reason?: string }; nices: number[]; workerNice: number }

function inChild(nice: number): ChildReport {
  const script = `
    import { raiseMainThreadPriority } from ${JSON.stringify(MODULE)};
    import { readdirSync, readFileSync } from "node:fs";
    import { Worker } from "node:worker_threads";
    const change = raiseMainThreadPriority(${nice});
    const niceOf = (tid) => Number(readFileSync("/proc/self/task/" + tid + "/stat", "utf8").split(") ")[1].split(" ")[16]);
    const nices = readdirSync("/proc/self/task").map(niceOf);
    const w = new Worker('Promise.all([import("node:os"), import("node:worker_threads")]).then(([os, wt]) => wt.parentPort.postMessage(os.getPriority(0)))', { eval: true });
    const workerNice = await new Promise((r) => w.once("message", r));
    await w.terminate();
    console.log(JSON.stringify({ change, nices, workerNice }));
  `;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" })) as ChildReport;
}

test("raising the priority reaches every thread of the process and the threads it starts after", (t) => {
  const r = inChild(-3);
  if (process.getuid?.() !== 0 && r.change.kind === "unchanged") {
    // without CAP_SYS_NICE the agent must say why and go on
    assert.match(r.change.reason ?? "", /CAP_SYS_NICE/);
    t.diagnostic("not root: only the refusal was checked");
    return;
  }
  assert.equal(r.change.kind, "raised");
  assert.ok((r.change.threads ?? 0) > 1, "V8's helper threads were raised too");
  assert.deepEqual([...new Set(r.nices)], [-3]);
  assert.equal(r.workerNice, -3);
});

test("a value that would lower the priority changes nothing", () => {
  const r = inChild(5);
  assert.equal(r.change.kind, "unchanged");
  assert.match(r.change.reason ?? "", /already at nice/);
  assert.ok(r.nices.every((n) => n <= 0));
});
