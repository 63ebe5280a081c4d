/**
 * Which outcome a job gets when more than one thing stopped it, against the real engine: the
 * Python agent's order (handle_job_closing), where an OOM the engine saw and the backend's kill
 * win over the timeout watcher, and an OOM-killed container wins over a kill. To have two causes
 * at once, the agent's kill requests are held by a proxy in front of the engine (never
 * forwarded): each cause is seen and logged by the agent, and the test then kills the container
 * itself, on the real engine.
 */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { newJob } from "./helpers/backend.js";
import { docker, eventually } from "./helpers/docker.js";
import { EngineProxy } from "./helpers/engine-proxy.js";
import { startSession, type Session } from "./helpers/session.js";
import { LABEL_JOB, LABEL_ROLE } from "../src/docker/labels.js";

let proxy: EngineProxy;
let s: Session;
before(async () => {
  proxy = await new EngineProxy().start();
  s = await startSession([], { env: { DOCKER_HOST: proxy.host } });
});
afterEach(async () => {
  proxy.release();
  await s.assertClean();
});
after(async () => {
  await s?.end();
  await proxy?.close();
});

/** The agent's kills never reach the engine (and are never answered) until the proxy is released. */
function holdKills(): void {
  proxy.rule = (method, url) => (method === "POST" && /\/containers\/[0-9a-f]{64}\/kill/.test(url) ? "hold" : "pass");
}

async function gradingContainer(jobId: string): Promise<string> {
  let id = "";
  await eventually(async () => {
    const list = await docker.listContainers({ filters: { label: [`${LABEL_JOB}=${jobId}`, `${LABEL_ROLE}=grading`] } });
    assert.equal(list.length, 1, "the job's grading container runs");
    id = list[0]!.Id;
  }, 30_000);
  return id;
}

const line = (jobId: string, msg: RegExp) => (l: { msg: string; [k: string]: unknown }) => l["job"] === jobId && msg.test(l.msg);
const outOfMemory = /^container ran out of memory: killing it$/;
const overWallTime = /^killing container: wall time over its limit of \d+ s$/;
const killing = /^killing job$/;

async function endWith(jobId: string, container: string): Promise<string> {
  assert.ok(proxy.heldRequests.some((r) => r.includes(`/containers/${container}/kill`)), "the agent's kill was held");
  await docker.getContainer(container).kill();
  const d = await s.backend.done(jobId, 60_000);
  assert.equal(s.backend.count("AgentJobDone", jobId), 1, "one AgentJobDone");
  assert.equal(d["state"], "st", "the previous state");
  assert.equal(d["grade"], 0);
  return (d["result"] as string[]).join(": ");
}

test("a job that runs out of memory and then over its wall time ends as overflow, not timeout", { timeout: 120_000 }, async () => {
  holdKills();
  await s.backend.send(newJob("oom-wall", { task_id: "memory", inputdata: { "@state": "st" }, limits: { time: 30, hard_time: 5, memory: 64 } }));
  const container = await gradingContainer("oom-wall");
  await s.agent.waitLog(line("oom-wall", outOfMemory), 30_000);
  await s.agent.waitLog(line("oom-wall", overWallTime), 30_000);
  assert.equal(await endWith("oom-wall", container), "overflow: ");
});

test("a job killed by the backend after its container ran out of memory ends as overflow", { timeout: 120_000 }, async () => {
  holdKills();
  await s.backend.send(newJob("oom-kill", { task_id: "memory", inputdata: { "@state": "st" }, limits: { time: 30, hard_time: 60, memory: 64 } }));
  const container = await gradingContainer("oom-kill");
  await s.agent.waitLog(line("oom-kill", outOfMemory), 30_000);
  await s.backend.send({ type: "BackendKillJob", job_id: "oom-kill", state: "ignored" });
  await s.agent.waitLog(line("oom-kill", killing), 10_000);
  assert.equal(await endWith("oom-kill", container), "overflow: ");
});

test("a job killed by the backend while over its wall time ends as killed, in either order", { timeout: 120_000 }, async () => {
  for (const killFirst of [false, true]) {
    const id = killFirst ? "kill-then-wall" : "wall-then-kill";
    holdKills();
    await s.backend.send(newJob(id, { task_id: "sleep", inputdata: { "@state": "st" }, limits: { time: 30, hard_time: 4 } }));
    const container = await gradingContainer(id);
    if (killFirst) {
      await s.backend.send({ type: "BackendKillJob", job_id: id, state: "ignored" });
      await s.agent.waitLog(line(id, killing), 10_000);
    }
    await s.agent.waitLog(line(id, overWallTime), 30_000);
    if (!killFirst) {
      await s.backend.send({ type: "BackendKillJob", job_id: id, state: "ignored" });
      await s.agent.waitLog(line(id, killing), 10_000);
    }
    assert.equal(await endWith(id, container), "killed: ", id);
    proxy.release();
  }
});
