/**
 * Decoding amplification from a real grading container (image test-raw, task `amplify`): a few
 * tens of MB that would decode to tens of millions of objects are refused before they are built
 * (`crash`, with a text that says why), a message of an unknown type is skipped unbuilt, and the
 * agent's memory stays bounded throughout.
 */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";

let s: Session;
before(async () => {
  s = await startSession([], { images: ["inginious-agent-docker-test/test-raw:latest"] });
});
afterEach(() => s.assertClean());
after(() => s?.end());

async function run(id: string, mode: string): Promise<[string, string]> {
  await s.backend.send(newJob(id, { task_id: "amplify", environment: "test-raw", inputdata: { "@state": "st", mode } }));
  const d = await s.backend.done(id, 120_000);
  assert.equal(d["state"], mode === "unknown" ? "" : "st");
  return d["result"] as [string, string];
}

function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${s.agent.pid}/status`, "utf8"));
  return Math.round(parseInt(m![1]!, 10) / 1024);
}

test("a result of 48 Mi empty maps is refused before it is built: crash, memory bounded", async () => {
  const [result, text] = await run("amplify-known", "known");
  assert.equal(result, "crash");
  assert.match(text, /The grader's output could not be read: the grading container sent a message that decodes to too much \(more than 1000000 values\)/);
  const peak = peakRssMb();
  process.stdout.write(`# agent peak RSS after a 48 MiB message of empty maps: ${peak} MB\n`);
  assert.ok(peak < 400, `peak RSS ${peak} MB`);
});

test("a result nested 100,000 levels deep is refused: crash", async () => {
  const [result, text] = await run("amplify-deep", "deep");
  assert.equal(result, "crash");
  assert.match(text, /decodes to too much \(nested deeper than 512 levels\)/);
});

test("a message of an unknown type is skipped without being built; the result after it counts", async () => {
  const [result, text] = await run("amplify-unknown", "unknown");
  assert.deepEqual([result, text], ["success", "after the noise"]);
  const peak = peakRssMb();
  process.stdout.write(`# agent peak RSS after a skipped 48 MiB message of an unknown type: ${peak} MB\n`);
  assert.ok(peak < 400, `peak RSS ${peak} MB`);
});
