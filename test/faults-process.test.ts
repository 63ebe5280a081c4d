/** The agent process under faults: SIGTERM with jobs running, SIGKILL then restart, the backend gone and back. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { AgentProcess, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { SAMPLE_IMAGE, dirListing, docker, engineContainers, eventually, requireDocker } from "./helpers/docker.js";
import { recordEvents } from "./helpers/engine-events.js";
import { LABEL_AGENT, LABEL_JOB, LABEL_ROLE, agentId } from "../src/docker/labels.js";

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

test("two agents on one engine: one's start-up cleanup, reconciliation and shutdown, and a third's restart after SIGKILL, never touch the other's containers or folders", { timeout: 240_000 }, async () => {
  await requireDocker();
  // A's --tmpdir holds B's and C's, under names that look like job folders: where A's start-up cleanup looks.
  const root = tempDir("two-agents");
  const dirs = { a: root.path, b: path.join(root.path, "job-b"), c: path.join(root.path, "job-c") };
  mkdirSync(dirs.b);
  mkdirSync(dirs.c);
  const before = await engineContainers(Object.values(dirs));
  const backends = { a: await new FakeBackend().start(), b: await new FakeBackend().start(), c: await new FakeBackend().start() };
  const stopPings = Object.values(backends).map((b) => b.pingEvery(1000));
  const args = (who: "a" | "b" | "c"): string[] =>
    [backends[who].address, "--tmpdir", dirs[who], "--tasks", TASKS, "--concurrency", "4", "--warm", "0"];
  const agents: AgentProcess[] = [];
  const started = async (who: "a" | "b" | "c"): Promise<AgentProcess> => {
    const hellos = backends[who].count("AgentHello");
    const agent = new AgentProcess(args(who));
    agents.push(agent);
    await backends[who].waitFor(() => backends[who].count("AgentHello") > hellos, 30_000);
    return agent;
  };
  const bLabel = `${LABEL_AGENT}=${agentId(dirs.b)}`;
  const touched = await recordEvents([bLabel], ["kill", "die", "stop", "destroy"]);
  let planted: string | null = null;
  try {
    // C: SIGKILLed with two jobs running, so that its restart has containers and folders to remove.
    const c1 = await started("c");
    for (const id of ["c-0", "c-1"]) await backends.c.send(newJob(id, { task_id: "sleep" }));
    await eventually(async () => assert.equal((await agentContainers(dirs.c)).length, 2), 30_000);
    c1.signal("SIGKILL");
    await c1.exited;

    // B: four jobs that hold their containers until released.
    await started("b");
    const bJobs = ["b-0", "b-1", "b-2", "b-3"];
    for (const [n, id] of bJobs.entries()) {
      await backends.b.send(newJob(id, { task_id: "hold", inputdata: { n: String(n) }, limits: { time: 60, hard_time: 600 } }));
    }
    const bRunning = async (): Promise<string[]> =>
      (await docker.listContainers({ filters: { label: [bLabel], status: ["running"] } })).map((c) => c.Id).sort();
    await eventually(async () => assert.equal((await bRunning()).length, 4), 60_000);
    const bContainers = await bRunning();
    const bFolders = await dirListing(dirs.b);
    assert.equal(bFolders.length, 4);

    // A starts (its cleanup runs), and gets an orphan of its own for its reconciliation to find.
    const a = await started("a");
    planted = (await docker.createContainer({
      Image: SAMPLE_IMAGE, Cmd: ["true"], Labels: { [LABEL_AGENT]: agentId(dirs.a), [LABEL_ROLE]: "grading", [LABEL_JOB]: "planted" },
    })).id;
    // C restarts on its folder: it removes what its killed run left, and only that.
    const c2 = await started("c");
    assert.ok(c2.logs.some((l) => /removed containers left by an earlier run/.test(l.msg) && l["count"] === 2), "C removed its 2 containers");
    assert.ok(c2.logs.some((l) => /removed job directories left by an earlier run/.test(l.msg) && l["count"] === 2), "C removed its 2 folders");
    assert.deepEqual(await agentContainers(dirs.c), []);
    await backends.a.send(newJob("a-0", { task_id: "echo", inputdata: { n: "7" } }));
    assert.deepEqual((await backends.a.done("a-0"))["result"], ["success", "n=7"]);
    // A's periodic reconciliation removes its orphan once older than its grace (60 s): B's containers are older still.
    await a.waitLog((l) => l.msg === "removing a container no running job owns" && l["container"] === planted, 120_000);
    // A shuts down with a job running; C stops.
    await backends.a.send(newJob("a-1", { task_id: "sleep" }));
    await eventually(async () => assert.equal((await agentContainers(dirs.a)).length, 1), 30_000);
    a.signal("SIGTERM");
    assert.equal(await a.exited, 0);
    assert.equal(((await backends.a.done("a-1", 2000))["result"] as string[])[0], "crash");
    assert.equal(await c2.stop(), 0);

    // B's containers and folders are as they were, and the engine never stopped or removed one of them.
    assert.deepEqual(await bRunning(), bContainers);
    assert.deepEqual(await dirListing(dirs.b), bFolders);
    // (B's own start-up check of layered task folders makes and removes a container of its own.)
    const others = touched.events.filter((e) => e.attributes[LABEL_JOB] !== "layer-check");
    assert.deepEqual(others.map((e) => `${e.action} ${e.attributes[LABEL_JOB]}`), []);
    assert.deepEqual((await dirListing(dirs.a)).filter((d) => d.startsWith("job-")), ["job-b", "job-c"]);

    // B's jobs, released, end with their own results.
    for (const folder of bFolders) writeFileSync(path.join(dirs.b, folder, "task", "student", "release"), "");
    for (const [n, id] of bJobs.entries()) {
      const done = await backends.b.done(id, 60_000);
      assert.deepEqual(done["result"], ["success", `n=${n}`]);
      assert.equal(done["grade"], n);
    }
    const jobEvents = (): typeof touched.events => touched.events.filter((e) => e.attributes[LABEL_JOB] !== "layer-check");
    await eventually(() => assert.equal(jobEvents().filter((e) => e.action === "die").length, 4));
    assert.deepEqual(jobEvents().filter((e) => e.action === "kill" || (e.action === "die" && e.attributes["exitCode"] !== "0")), []);
  } finally {
    touched.stop();
    stopPings.forEach((stop) => stop());
    for (const agent of agents) await agent.stop();
    Object.values(backends).forEach((b) => b.close());
    if (planted !== null) await docker.getContainer(planted).remove({ force: true }).catch(() => {});
    await eventually(async () => assert.deepEqual(await engineContainers(Object.values(dirs)), before));
    assert.deepEqual(await dirListing(dirs.b), []);
    assert.deepEqual(await dirListing(dirs.c), []);
    root.remove();
  }
});
