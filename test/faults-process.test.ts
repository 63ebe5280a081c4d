/** The agent process under faults: SIGTERM with jobs running, SIGKILL then restart, the backend gone and back. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AgentProcess, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { dirListing, docker, engineContainers, eventually, requireDocker } from "./helpers/docker.js";
import { LABEL_AGENT, agentId } from "../src/docker/labels.js";

async function agentContainers(tmpdir: string): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId(tmpdir)}`] } });
  return list.map((c) => c.Id);
}

/** The end of a SIGKILL-and-restart test, passed or not: both agents gone, nothing of the test left on the engine. */
async function endRestartTest(t: {
  stopPings: () => void; first: AgentProcess; second: AgentProcess | null; backend: FakeBackend;
  tmp: { path: string; remove(): void }; before: string[];
}): Promise<void> {
  t.stopPings();
  t.first.signal("SIGKILL");
  await t.second?.stop();
  t.backend.close();
  await eventually(async () => assert.deepEqual(await engineContainers([t.tmp.path]), t.before));
  t.tmp.remove();
}

test("SIGTERM with jobs running: each is reported crash, everything is removed, exit 0 within 10 s", async () => {
  await requireDocker();
  const tmp = tempDir("sigterm");
  const before = await engineContainers([tmp.path]);
  const backend = await new FakeBackend().start();
  const agent = new AgentProcess([backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "4", "--warm", "0"]);
  const stopPings = backend.pingEvery(1000);
  try {
    await backend.waitType("AgentHello");
    const ids = ["term-0", "term-1", "term-2", "term-3", "term-4"]; // the fifth waits in the queue
    for (const id of ids) await backend.send(newJob(id, { task_id: "sleep", inputdata: { "@state": `st-${id}` } }));
    await eventually(async () => assert.equal((await agentContainers(tmp.path)).length, 4), 30_000);
    const t0 = Date.now();
    agent.signal("SIGTERM");
    const code = await agent.exited;
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 10_000, `exited after ${Date.now() - t0} ms`);
    for (const id of ids) {
      const done = await backend.done(id, 2000);
      assert.equal((done["result"] as string[])[0], "crash");
      assert.match((done["result"] as string[])[1]!, /shutting down/);
      assert.equal(done["state"], `st-${id}`);
      assert.equal(backend.count("AgentJobDone", id), 1);
    }
    await eventually(async () => assert.deepEqual(await engineContainers([tmp.path]), before));
    assert.deepEqual(await dirListing(tmp.path), []);
  } finally {
    stopPings();
    await agent.stop();
    backend.close();
    tmp.remove();
  }
});

test("SIGKILL with 4 jobs running, then a restart on the same --tmpdir removes their containers and directories", async () => {
  await requireDocker();
  const tmp = tempDir("sigkill");
  const before = await engineContainers([tmp.path]);
  // something in --tmpdir that the agent did not make: it must survive
  const { writeFileSync, mkdirSync } = await import("node:fs");
  writeFileSync(`${tmp.path}/operator-notes.txt`, "keep me");
  mkdirSync(`${tmp.path}/job-not-ours`);
  const backend = await new FakeBackend().start();
  const first = new AgentProcess([backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "4", "--warm", "0"]);
  const stopPings = backend.pingEvery(1000);
  let second: AgentProcess | null = null;
  try {
    await backend.waitType("AgentHello");
    for (let i = 0; i < 4; i++) await backend.send(newJob(`killed-agent-${i}`, { task_id: "sleep" }));
    await eventually(async () => assert.equal((await agentContainers(tmp.path)).length, 4), 30_000);
    await eventually(async () => assert.equal((await dirListing(tmp.path)).filter((d) => d.startsWith("job-") && d !== "job-not-ours").length, 4));
    first.signal("SIGKILL");
    await first.exited;
    assert.equal((await agentContainers(tmp.path)).length, 4, "the killed agent could not clean up");

    const helloCount = backend.count("AgentHello");
    second = new AgentProcess([backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "4", "--warm", "0"]);
    await backend.waitFor(() => backend.count("AgentHello") > helloCount, 30_000);
    assert.deepEqual(await agentContainers(tmp.path), []);
    assert.deepEqual(await dirListing(tmp.path), ["job-not-ours", "operator-notes.txt"]);
    assert.ok(second.logs.some((l) => /removed containers left by an earlier run/.test(l.msg) && l["count"] === 4));
  } finally {
    await endRestartTest({ stopPings, first, second, backend, tmp, before });
  }
});

test("warm containers: a killed agent's are removed at the next start, a stopped agent leaves none", async () => {
  await requireDocker();
  const tmp = tempDir("warm-restart");
  const before = await engineContainers([tmp.path]);
  const backend = await new FakeBackend().start();
  const args = [backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "4", "--warm", "2"];
  const warmDirs = async (): Promise<string[]> => (await dirListing(tmp.path)).filter((d) => d.startsWith("job-warm-"));
  const first = new AgentProcess(args);
  const stopPings = backend.pingEvery(1000);
  let second: AgentProcess | null = null;
  try {
    await backend.waitType("AgentHello");
    await backend.send(newJob("demand-1", { task_id: "failed" }));
    await backend.done("demand-1", 60_000);
    await eventually(async () => assert.equal((await agentContainers(tmp.path)).length, 2), 30_000);
    assert.equal((await warmDirs()).length, 2);
    first.signal("SIGKILL");
    await first.exited;
    assert.equal((await agentContainers(tmp.path)).length, 2, "the killed agent's warm containers are still there");

    const helloCount = backend.count("AgentHello");
    second = new AgentProcess(args);
    await backend.waitFor(() => backend.count("AgentHello") > helloCount, 30_000);
    assert.deepEqual(await agentContainers(tmp.path), []);
    assert.deepEqual(await warmDirs(), []);

    await backend.send(newJob("demand-2", { task_id: "failed" }));
    await backend.done("demand-2", 60_000);
    await eventually(async () => assert.equal((await agentContainers(tmp.path)).length, 2), 30_000);
    await second.stop();
    assert.deepEqual(await agentContainers(tmp.path), [], "a stopped agent leaves no warm container");
    assert.deepEqual(await dirListing(tmp.path), []);
  } finally {
    await endRestartTest({ stopPings, first, second, backend, tmp, before });
  }
});

test("the backend gone for 15 s, then back on the same address: a new hello, and jobs run again", async () => {
  await requireDocker();
  const tmp = tempDir("backend-gone");
  const backend = await new FakeBackend().start();
  const address = backend.address;
  const agent = new AgentProcess([address, "--tmpdir", tmp.path, "--tasks", TASKS]);
  let back: FakeBackend | null = null;
  let stopPings = backend.pingEvery(1000);
  try {
    await backend.waitType("AgentHello");
    stopPings();
    backend.close();
    await new Promise((r) => setTimeout(r, 15_000));
    back = await new FakeBackend().start(address);
    stopPings = back.pingEvery(1000);
    await back.waitType("AgentHello", 20_000);
    await back.send(newJob("after-outage", { task_id: "failed" }));
    const done = await back.done("after-outage", 60_000);
    assert.equal((done["result"] as string[])[0], "failed");
  } finally {
    stopPings();
    await agent.stop();
    back?.close();
    tmp.remove();
  }
});
