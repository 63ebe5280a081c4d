/**
 * A pool thread that dies mid-job (IAD_TEST_POOL_THREAD_EXIT, workers/fault-hook.ts: the thread
 * ends itself once the job's grading container runs): the job is reported `crash`, and the main
 * thread removes the container the thread left (src/jobs/leftovers.ts). Until the engine has
 * removed it, the dead job's slot, memory and ports stay held: the removals are held by an engine
 * proxy for a while, and no job may take them meanwhile; once the engine answers, the next job runs,
 * and its container is created only after the dead job's is destroyed. When the engine never lets
 * the container go, the bound ends the wait with an error line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AgentProcess, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { dirListing, docker, engineContainers, eventually, requireDocker } from "./helpers/docker.js";
import { EngineProxy } from "./helpers/engine-proxy.js";
import { recordEvents, type EventRecorder } from "./helpers/engine-events.js";
import { LABEL_AGENT, LABEL_JOB, agentId } from "../src/docker/labels.js";
import { freePort } from "./helpers/free-port.js";
import { agentVolumes } from "./helpers/session.js";

type Done = Record<string, unknown>;
const result = (d: Done): string[] => d["result"] as string[];
const DEAD_TEXT = "The agent failed while running this job. Please retry.";
const HOLD_MS = 6000;

const jobContainers = async (jobId: string): Promise<string[]> =>
  (await docker.listContainers({ all: true, filters: { label: [`${LABEL_JOB}=${jobId}`] } })).map((c) => c.Id);

interface Rig {
  proxy: EngineProxy;
  backend: FakeBackend;
  agent: AgentProcess;
  tmp: { path: string; remove(): void };
  events: EventRecorder;
  /** Removals of containers are held (never answered) while true. */
  holding: { on: boolean };
  end(): Promise<void>;
}

async function rig(name: string, deadJob: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Rig> {
  await requireDocker();
  const tmp = tempDir(name);
  const before = await engineContainers([tmp.path]);
  const proxy = await new EngineProxy().start();
  const holding = { on: false };
  proxy.rule = (method, url) => (holding.on && method === "DELETE" && /\/containers\/[0-9a-f]{64}/.test(url) ? "hold" : "pass");
  const backend = await new FakeBackend().start();
  const events = await recordEvents([`${LABEL_AGENT}=${agentId(tmp.path)}`], ["create", "destroy"]);
  const agent = new AgentProcess([backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--warm", "0", "--debug-host", "127.0.0.1", ...args], {
    DOCKER_HOST: proxy.host, IAD_ENGINE_CALL_TIMEOUT_MS: "2000", IAD_TEST_POOL_THREAD_EXIT: deadJob, ...env,
  });
  await backend.waitType("AgentHello", 30_000);
  const stopPings = backend.pingEvery(1000);
  return {
    proxy, backend, agent, tmp, events, holding,
    async end() {
      stopPings();
      holding.on = false;
      proxy.release();
      events.stop();
      await agent.stop();
      backend.close();
      try {
        await eventually(async () => assert.deepEqual(await engineContainers([tmp.path]), before, "containers left behind"), 30_000);
        assert.deepEqual(await dirListing(tmp.path), [], "job directories left behind");
      } finally {
        await proxy.close();
        tmp.remove();
      }
    },
  };
}

/** Runs `body`, then ends the rig; a failure of the body is the one reported (the end's own only without one). */
async function withRig(r: Rig, body: () => Promise<void>): Promise<void> {
  let failure: Error | null = null;
  try {
    await body();
  } catch (err) {
    failure = err as Error;
  }
  try {
    await r.end();
  } catch (err) {
    failure ??= err as Error;
  }
  if (failure !== null) throw failure;
}

/** The dead job is answered `crash`, and its container is still there (its removal is held). */
async function deadJobReported(r: Rig, jobId: string): Promise<string> {
  const done = await r.backend.done(jobId, 60_000);
  assert.deepEqual(result(done), ["crash", DEAD_TEXT]);
  await r.agent.waitLog((l) => l.msg === "worker failed while running the job" && l["job"] === jobId, 10_000);
  const left = await jobContainers(jobId);
  assert.equal(left.length, 1, "the dead thread's grading container is still on the engine");
  return left[0]!;
}

/** For HOLD_MS: the dead job's container is still there and no container of `next` was made. */
async function nothingTakesItsPlace(r: Rig, dead: string, next: string): Promise<void> {
  const until = Date.now() + HOLD_MS;
  while (Date.now() < until) {
    assert.deepEqual(await jobContainers(next), [], `${next} got a container while the dead job's was still there`);
    assert.equal((await jobContainers(dead)).length, 1);
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.ok(r.agent.logs.some((l) => l["job"] === dead && /a dead worker's containers are not removed yet/.test(l.msg)), "the held removal is logged");
}

/** The next job's container was created after the dead job's was destroyed. */
function createdAfterDestroy(r: Rig, deadContainer: string, next: string): void {
  const destroyed = r.events.events.find((e) => e.action === "destroy" && e.containerId === deadContainer);
  const created = r.events.ofJob(next).find((e) => e.action === "create");
  assert.ok(destroyed !== undefined && created !== undefined, "both events seen");
  assert.ok(created.timeNano > destroyed.timeNano, "the next job's container came after the dead job's was gone");
}

test("a pool thread dies mid-job: its slot stays held until its container is removed", { timeout: 180_000 }, async () => {
  const r = await rig("dead-slot", "dead-slot", ["--concurrency", "1"]);
  await withRig(r, async () => {
    r.holding.on = true;
    await r.backend.send(newJob("dead-slot", { task_id: "success" }));
    const deadContainer = await deadJobReported(r, "dead-slot");
    await r.backend.send(newJob("after-dead-slot", { task_id: "success" }));
    await nothingTakesItsPlace(r, "dead-slot", "after-dead-slot");
    r.holding.on = false;
    r.proxy.release();
    assert.equal(result(await r.backend.done("after-dead-slot", 60_000))[0], "success");
    assert.deepEqual(await jobContainers("dead-slot"), []);
    createdAfterDestroy(r, deadContainer, "after-dead-slot");
    await r.agent.waitLog((l) => l["job"] === "dead-slot" && l.msg === "a dead worker's containers are removed", 10_000);
  });
});

test("a pool thread dies mid-job: its memory and its debug port stay held until its container is removed", { timeout: 180_000 }, async () => {
  const port = await freePort();
  // 1,000 MB usable: the dead job's 600 MB and the next one's 600 MB do not fit together
  const r = await rig("dead-mem", "dead-mem", ["--concurrency", "4", "--memory-reserve", "300", "--debug-ports", `${port}-${port}`],
    { INGINIOUS_AGENT_HOST_MEMORY: "1300" });
  await withRig(r, async () => {
    r.holding.on = true;
    await r.backend.send(newJob("dead-mem", { task_id: "ssh", debug: "ssh", inputdata: { hold: "30" }, limits: { memory: 600 } }));
    const deadContainer = await deadJobReported(r, "dead-mem");
    await r.backend.send(newJob("after-dead-mem", { task_id: "success", limits: { memory: 600 } }));
    // the one debug port is still published by the dead job's container: none for a new job
    await r.backend.send(newJob("after-dead-port", { task_id: "ssh", debug: "ssh", inputdata: { hold: "0" }, limits: { memory: 100 } }));
    assert.deepEqual(result(await r.backend.done("after-dead-port", 10_000)), ["crash", "No ports are available right now. Please retry later."]);
    await nothingTakesItsPlace(r, "dead-mem", "after-dead-mem");
    r.holding.on = false;
    r.proxy.release();
    assert.equal(result(await r.backend.done("after-dead-mem", 60_000))[0], "success");
    createdAfterDestroy(r, deadContainer, "after-dead-mem");
    // and the port is free again
    await r.backend.send(newJob("port-again", { task_id: "ssh", debug: "ssh", inputdata: { hold: "0" }, limits: { memory: 100 } }));
    await r.backend.waitFor((m) => m["@type"] === "AgentJobSSHDebug" && m["job_id"] === "port-again", 30_000);
    assert.equal(result(await r.backend.done("port-again", 60_000))[0], "success");
  });
});

test("a pool thread dies mid-job and the engine never lets its container go: the bound ends the wait, with an error line", { timeout: 180_000 }, async () => {
  const r = await rig("dead-bound", "dead-bound", ["--concurrency", "1"], { IAD_ENGINE_RECOVERY_MS: "5000" });
  await withRig(r, async () => {
    r.holding.on = true;
    await r.backend.send(newJob("dead-bound", { task_id: "success" }));
    const deadContainer = await deadJobReported(r, "dead-bound");
    await r.backend.send(newJob("after-dead-bound", { task_id: "success" }));
    await r.agent.waitLog((l) => l["job"] === "dead-bound" && /did not let a dead worker's containers be removed in time/.test(l.msg), 30_000);
    assert.equal(result(await r.backend.done("after-dead-bound", 60_000))[0], "success");
    // the agent left it to its periodic check (60 s of grace): the test removes it
    assert.deepEqual(await jobContainers("dead-bound"), [deadContainer]);
    // its layered /task could not go while the container held it: the periodic check (every 30 s) removes it once unused
    const deadVolume = (v: string): boolean => v.startsWith("inginious-task-job-dead-bound-");
    const volumes = await agentVolumes(r.tmp.path);
    assert.equal(volumes.filter(deadVolume).length, 1, `the dead job's volume is still there: ${volumes.join(", ")}`);
    await docker.getContainer(deadContainer).remove({ force: true });
    await eventually(async () => assert.deepEqual((await agentVolumes(r.tmp.path)).filter(deadVolume), []), 45_000);
    assert.ok(r.agent.logs.some((l) => l.msg === "removing a volume no running job owns" && deadVolume(String(l["volume"]))));
  });
});
