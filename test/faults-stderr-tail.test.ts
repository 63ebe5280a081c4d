/**
 * The grading container's stderr: a job that ends without a result has the last 4 KB of it in
 * its `job done` log line, and nothing of it goes to the backend.
 */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";

let s: Session;
before(async () => {
  s = await startSession([], { images: ["inginious-agent-docker-test/test-raw:latest"] });
});
afterEach(() => s.assertClean());
after(() => s?.end());

test("9000 bytes on stderr and no result: the job done line carries exactly the last 4 KB; the backend gets the usual crash", async () => {
  await s.backend.send(newJob("stderr-tail", { task_id: "raw-stderr", environment: "test-raw" }));
  const done = await s.backend.done("stderr-tail", 60_000);
  // the Python agent's text, word for word
  assert.deepEqual(done["result"], ["crash", "The grader did not return a readable output : Grading container did not return any result."]);
  assert.ok(!("stderrTail" in done));
  assert.equal(done["stderr"], "");

  const written = Array.from({ length: 1000 }, (_, i) => `err ${String(i).padStart(4, "0")}\n`).join("");
  const [line] = await s.agent.waitLogs((l) => l.msg === "job done" && l["job"] === "stderr-tail", 1);
  assert.equal(line!["stderrTail"], written.slice(-4096));
});

test("a job with a result logs no stderr", async () => {
  await s.backend.send(newJob("stderr-result"));
  assert.equal(((await s.backend.done("stderr-result", 60_000))["result"] as string[])[0], "success");
  const [line] = await s.agent.waitLogs((l) => l.msg === "job done" && l["job"] === "stderr-result", 1);
  assert.ok(!("stderrTail" in line!));
});
