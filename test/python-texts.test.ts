/**
 * The Python agent's texts, word for word, where this agent ends a job the same way, against the
 * real engine (a proxy in front of it refuses the calls a test wants refused): a grading container
 * the engine will not create or start, SSH access asked for a student container that is not the
 * job's. What exactly failed goes to the `job done` log line, not into the text.
 */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { newJob } from "./helpers/backend.js";
import { EngineProxy } from "./helpers/engine-proxy.js";
import { startSession, type Session } from "./helpers/session.js";

let proxy: EngineProxy;
let s: Session;
before(async () => {
  proxy = await new EngineProxy().start();
  s = await startSession([], { env: { DOCKER_HOST: proxy.host }, images: ["inginious-agent-docker-test/test-raw:latest"] });
});
afterEach(async () => {
  proxy.release();
  await s.assertClean();
});
after(async () => {
  await s?.end();
  await proxy?.close();
});

async function crash(jobId: string, over: Parameters<typeof newJob>[1]): Promise<{ text: string; detail: unknown }> {
  await s.backend.send(newJob(jobId, { ...over, inputdata: { ...(over?.inputdata as object), "@state": "st" } }));
  const d = await s.backend.done(jobId, 60_000);
  assert.equal(s.backend.count("AgentJobDone", jobId), 1);
  assert.equal((d["result"] as string[])[0], "crash", JSON.stringify(d["result"]));
  assert.equal(d["state"], "st");
  const line = await s.agent.waitLog((l) => l.msg === "job done" && l["job"] === jobId, 5000);
  return { text: (d["result"] as string[])[1]!, detail: line["detail"] };
}

test("a grading container the engine will not create: Cannot create container.", async () => {
  proxy.rule = (method, url) => (method === "POST" && /\/containers\/create/.test(url) ? "fail" : "pass");
  const { text, detail } = await crash("no-create", {});
  assert.equal(text, "Cannot create container.");
  assert.match(String(detail), /^The agent could not create the grading container: .*refused by the test's engine proxy/);
});

test("a grading container the engine will not start: Cannot start container", async () => {
  proxy.rule = (method, url) => (method === "POST" && /\/containers\/[0-9a-f]{64}\/start/.test(url) ? "fail" : "pass");
  const { text, detail } = await crash("no-start", {});
  assert.equal(text, "Cannot start container");
  assert.match(String(detail), /^The agent could not start the grading container: .*refused by the test's engine proxy/);
});

test("SSH access to a student container that is not the job's", async () => {
  const { text } = await crash("ssh-foreign", { task_id: "raw", environment: "test-raw", inputdata: { mode: "ssh-foreign" } });
  assert.equal(text, "Trying to connect with ssh to a non-children student container !");
});
