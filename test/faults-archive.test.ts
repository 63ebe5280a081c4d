/**
 * A grader that leaves 900 MiB of zeros in /archive (about 1 MB once the container's entry has
 * packed it): the job gets the grader's own result, as in INGInious, and the agent's memory
 * stays bounded while it checks the archive. The zeros live in the container's writable layer
 * and go with the container; the session checks that nothing is left.
 */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";

let s: Session;
before(async () => {
  s = await startSession();
});
afterEach(() => s.assertClean());
after(() => s?.end());

/** Peak resident memory of the agent process since it started, in MB. */
function agentPeakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${s.agent.pid}/status`, "utf8"));
  assert.ok(m, "VmHWM in the agent's /proc status");
  return parseInt(m[1]!, 10) / 1024;
}

test("900 MiB of zeros in /archive: success, the archive passed on, the agent's peak RSS under 300 MB", async () => {
  // The usual level: the peak after an ordinary job (which starts a pool thread) is the reference.
  await s.backend.send(newJob("usual", { task_id: "success", inputdata: { q1: "x", "@state": "" } }));
  assert.equal(((await s.backend.done("usual", 60_000))["result"] as string[])[0], "success");
  const before = agentPeakRssMb();
  await s.backend.send(newJob("archive-zeros", { task_id: "archive-zeros", limits: { time: 120, hard_time: 300, memory: 200 } }));
  const d = await s.backend.done("archive-zeros", 300_000);
  const peak = agentPeakRssMb();
  process.stdout.write(`# agent peak RSS: ${before.toFixed(0)} MB after an ordinary job, ${peak.toFixed(0)} MB after the 900 MiB archive\n`);
  assert.deepEqual(d["result"], ["success", "900 MiB of zeros left in /archive"]);
  assert.ok(peak < 300, `the agent's peak RSS reached ${peak.toFixed(0)} MB`);

  const archive = d["archive"] as Uint8Array;
  assert.ok(archive instanceof Uint8Array && archive.length < 8 * 1024 * 1024, `archive of ${archive?.length} bytes`);
  let inflated = 0;
  await pipeline(Readable.from([Buffer.from(archive)]), createGunzip(), new Writable({
    write(chunk: Buffer, _encoding, done) {
      inflated += chunk.length;
      done();
    },
  }));
  assert.ok(inflated > 900 * 1024 * 1024, `the archive inflates to ${inflated} bytes`);
});
