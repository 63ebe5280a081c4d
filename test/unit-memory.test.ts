/**
 * Memory admission without Docker: the budget's arithmetic, the warm pool's plan within free
 * memory, and the dispatcher's order (a job that does not fit holds the head of the queue, starts
 * once memory is released, and big jobs are not starved), student containers' requests for memory,
 * and the fallback from a warm container that is not ready in time. The worker pool is a fake
 * whose tasks the test ends; the registry, dispatcher and warm containers are the agent's own.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import type Docker from "dockerode";
import { pino } from "pino";
import type { Piscina } from "piscina";
import type { RuntimeSpec } from "../src/config.js";
import type { AdmissionSnapshot } from "../src/jobs/admission.js";
import { Dispatcher, WARM_WAIT_MS } from "../src/jobs/dispatch.js";
import type { JobSpec as JobTask, MainApi, WarmCreated, WarmSpec as WarmTask } from "../src/jobs/job-task.js";
import type { AgentEvents } from "../src/jobs/observed.js";
import { JobRegistry } from "../src/jobs/registry.js";
import { WarmContainers, warmKey } from "../src/jobs/warm-containers.js";
import { BACK_TO_BACK_GAP_MS, WarmPool } from "../src/jobs/warm-pool.js";
import {
  HOST_MEMORY_ENV, MemoryBudget, WARM_GROUP, defaultReserveMb, hostMemoryMb, memoryAdvice, usableMemoryMb,
} from "../src/limits/memory-budget.js";
import { PortPool } from "../src/limits/port-pool.js";
import { Outbox } from "../src/jobs/outbox.js";
import type { BackendNewJob } from "../src/protocol/messages.js";

describe("memory budget", () => {
  test("reserves what fits, per holder, and releases by holder or by group", () => {
    const b = new MemoryBudget(1000);
    assert.equal(b.reserve("j1", "grading", 600), true);
    assert.equal(b.reserve("j2", "grading", 500), false, "600 + 500 > 1000");
    assert.equal(b.reservedMb, 600);
    assert.equal(b.reserve("j1", "grading", 10), false, "a holder reserves once");
    assert.equal(b.reserve("j1", "s1", 400), true);
    assert.equal(b.freeMb, 0);
    assert.equal(b.fits(0), true);
    assert.equal(b.fits(1), false);
    assert.equal(b.heldBy("j1"), 1000);
    assert.equal(b.release("j1", "s1"), 400);
    assert.equal(b.release("j1", "s1"), 0, "released once");
    assert.equal(b.releaseGroup("j1"), 600);
    assert.equal(b.reservedMb, 0);
    assert.deepEqual(b.groups(), []);
    assert.equal(b.couldEverFit(1000), true);
    assert.equal(b.couldEverFit(1001), false);
  });

  test("usable memory is the host's less the reserve; the default reserve is a tenth, from 256 MB to 2 GB", () => {
    assert.equal(defaultReserveMb(1000), 256);
    assert.equal(defaultReserveMb(8000), 800);
    assert.equal(defaultReserveMb(64_000), 2048);
    assert.equal(usableMemoryMb(8000, null), 7200);
    assert.equal(usableMemoryMb(8000, 0), 8000);
    assert.equal(usableMemoryMb(8000, 9000), 0);
  });

  test("the host's memory can be overridden in MB; a bad value says so", () => {
    assert.equal(hostMemoryMb({ [HOST_MEMORY_ENV]: "1200" }), 1200);
    assert.ok(hostMemoryMb({}) > 0);
    assert.throws(() => hostMemoryMb({ [HOST_MEMORY_ENV]: "12G" }), /INGINIOUS_AGENT_HOST_MEMORY: expected the host's memory in MB/);
    assert.throws(() => hostMemoryMb({ [HOST_MEMORY_ENV]: "0" }), /positive whole number/);
  });

  test("the start-up warning: when concurrency x 1,024 MB exceeds usable memory", () => {
    assert.equal(memoryAdvice(7, 7200), null);
    const text = memoryAdvice(8, 7200);
    assert.match(text!, /--concurrency 8 x 1024 MB .* is 8192 MB, more than the 7200 MB jobs may use here/);
    assert.match(text!, /only 7 such job\(s\) run at once/);
  });

  test("the warm pool plans no more containers than the free memory holds", () => {
    const pool = new WarmPool(3);
    pool.noteDemand("py", 300);
    assert.deepEqual([...pool.plan(8, false, 700)], [["py", 2]]);
    assert.deepEqual([...pool.plan(8, false, 299)], []);
    assert.deepEqual([...pool.plan(8, false)], [["py", 3]]);
  });
});

// ---- the dispatcher, with a fake worker pool ------------------------------------------------

/** Waits until `done()` holds (checked every 10 ms), or fails after `ms`. */
async function until(done: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail("timed out waiting for the dispatcher");
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface PoolTask {
  task: JobTask | WarmTask;
  name: string | undefined;
  resolve: (value: unknown) => void;
}

/** A worker pool whose tasks stay pending until the test ends them. */
class FakePool {
  readonly tasks: PoolTask[] = [];
  run(task: JobTask | WarmTask, opts?: { name?: string }): Promise<unknown> {
    return new Promise((resolve) => this.tasks.push({ task, name: opts?.name, resolve }));
  }
  jobs(): JobTask[] {
    return this.tasks.filter((t) => t.name === undefined).map((t) => t.task as JobTask);
  }
  /** Ends a job's pool task with an outcome: the job closes, its worker lets go, its memory is released. */
  async finish(jobId: string): Promise<void> {
    const t = this.tasks.find((x) => x.name === undefined && (x.task as JobTask).jobId === jobId);
    assert.ok(t !== undefined, `job ${jobId} was never dispatched`);
    t.resolve({ kind: "crash", text: "ended by the test", timeout: false, oomKilled: false });
    await new Promise((r) => setTimeout(r, 10));
  }
}

const runc: RuntimeSpec = { runtime: "runc", envtype: "docker", runAsRoot: false, shared: true, gpu: false };

function rig(opts: { usableMb: number; slots?: number; warm?: number }) {
  const log = pino({ level: "silent" });
  const docker = { getContainer: () => ({ remove: async () => {}, kill: async () => {} }) } as unknown as Docker;
  const memory = new MemoryBudget(opts.usableMb);
  const ports = new PortPool({ begin: 64100, end: 64101 });
  const outbox = new Outbox();
  const observed = new EventEmitter<AgentEvents>();
  const pool = new FakePool();
  // eslint-disable-next-line prefer-const
  let dispatcher: Dispatcher;
  const warm = new WarmContainers(opts.warm ?? 0, "/nonexistent-tmp", () => ({
    memoryMb: 100, labels: {},
  }), docker, log, memory, () => dispatcher.pump());
  const registry = new JobRegistry(docker, log, ports, memory, warm, outbox, observed, {
    jobClosed: (job, wasQueued) => dispatcher.jobClosed(job, wasQueued),
    slotFreed: () => dispatcher.pump(),
    askMemory: (job, holder, mb) => dispatcher.askMemory(job, holder, mb),
    memoryReleased: () => dispatcher.pump(),
  });
  dispatcher = new Dispatcher(opts.slots ?? 10, "/nonexistent-tmp", log, registry, ports, memory, warm, outbox);
  dispatcher.usePool(pool as unknown as Piscina);
  const snapshot: AdmissionSnapshot = {
    environments: {
      docker: {
        default: { id: "sha256:img", title: "d", created: 1, ports: [], runtime: "runc", advertised: true },
        other: { id: "sha256:other", title: "o", created: 1, ports: [], runtime: "runc", advertised: true },
      },
    },
    runtimes: new Map([["docker", runc]]),
    usableMemoryMb: opts.usableMb,
    debugHost: null,
    tasksRoot: "/srv/tasks",
    agentId: "a",
    diskLimit: true,
  };
  const send = (jobId: string, memory: number, environment = "default"): void => {
    const msg: BackendNewJob = {
      type: "BackendNewJob", job_id: jobId, course_id: null, task_id: null, task_problems: {}, inputdata: {},
      environment_type: "docker", environment,
      environment_parameters: { limits: { time: 10, hard_time: 30, memory } }, debug: false,
    };
    dispatcher.onNewJob(msg, snapshot);
  };
  const dispatched = (): string[] => pool.jobs().map((t) => t.jobId);
  const api: MainApi = registry.mainApi();
  return { memory, pool, dispatcher, registry, warm, send, dispatched, api, outbox };
}

describe("dispatch by memory", () => {
  test("a job that does not fit waits at the head, starts once memory is released; smaller jobs behind it wait too", async () => {
    const r = rig({ usableMb: 1000 });
    r.send("a", 400);
    r.send("b", 400);
    r.send("big", 700);
    r.send("small", 100);
    assert.deepEqual(r.dispatched(), ["a", "b"], "big does not fit: it and the job behind it wait");
    assert.equal(r.memory.reservedMb, 800);
    assert.equal(r.dispatcher.jobsWaitingForMemory, 2);
    await r.pool.finish("a");
    assert.deepEqual(r.dispatched(), ["a", "b"], "600 free: big (700) still waits, and small does not pass it");
    await r.pool.finish("b");
    assert.deepEqual(r.dispatched(), ["a", "b", "big", "small"]);
    assert.equal(r.memory.reservedMb, 800);
    assert.equal(r.dispatcher.jobsWaitingForMemory, 0);
    await r.pool.finish("big");
    await r.pool.finish("small");
    assert.equal(r.memory.reservedMb, 0, "released when each worker let go of its job");
  });

  test("a job that could never fit is refused with INGInious's text; one that fits alone is not", () => {
    const r = rig({ usableMb: 1000 });
    const sent: unknown[] = [];
    r.outbox.attach((m) => void sent.push(m));
    r.send("huge", 1001);
    r.send("whole", 1000);
    assert.deepEqual(r.dispatched(), ["whole"]);
    const done = sent.find((m) => (m as { type: string; job_id: string }).type === "AgentJobDone" && (m as { job_id: string }).job_id === "huge");
    assert.ok(done !== undefined, "huge ended");
    assert.deepEqual((done as { result: unknown }).result, ["crash", "Not enough memory on agent (available: 1000MB). Please contact your course administrator."]);
  });

  test("a job killed while it waits for memory leaves the queue; the next one moves up", async () => {
    const r = rig({ usableMb: 1000 });
    r.send("a", 700);
    r.send("b", 700);
    r.send("c", 300);
    r.registry.onKill({ type: "BackendKillJob", job_id: "b", state: "" } as never);
    assert.deepEqual(r.dispatched(), ["a", "c"]);
    await r.pool.finish("a");
    await r.pool.finish("c");
  });
});

describe("student containers' memory", () => {
  test("reserved at once when it fits; waits for memory, before queued jobs; released by its holder", async () => {
    const r = rig({ usableMb: 1000 });
    r.send("a", 400);
    r.send("b", 400);
    assert.equal(await r.api.reserveMemory("a", "s1", 200), true);
    assert.equal(r.memory.reservedMb, 1000);
    let answered: boolean | null = null;
    void r.api.reserveMemory("a", "s2", 300).then((ok) => (answered = ok));
    r.send("c", 400);
    await new Promise((res) => setTimeout(res, 10));
    assert.equal(answered, null, "waits");
    assert.equal(r.dispatcher.studentsWaitingForMemory, 1);
    r.api.releaseMemory("a", "s1");
    await new Promise((res) => setTimeout(res, 10));
    assert.equal(answered, null, "200 free is not 300");
    await r.pool.finish("b");
    assert.equal(answered, true, "served once b's memory was released");
    assert.deepEqual(r.dispatched(), ["a", "b"], "c waited behind the student container, and now for memory (a: 400 + 300)");
    await r.pool.finish("a");
    assert.deepEqual(r.dispatched(), ["a", "b", "c"]);
    assert.equal(r.memory.reservedMb, 400, "a's student hold went with a");
    await r.pool.finish("c");
  });

  test("refused at once when it could never fit beside its job; refused when its job ends; refused when only waiting jobs hold memory", async () => {
    const r = rig({ usableMb: 1000 });
    r.send("a", 500);
    r.send("b", 500);
    assert.equal(await r.api.reserveMemory("a", "s1", 501), false, "500 + 501 > 1000");
    const first = r.api.reserveMemory("a", "s1", 300);
    await new Promise((res) => setTimeout(res, 10));
    await r.pool.finish("a");
    assert.equal(await first, false, "its job ended");
    r.send("c", 500);
    assert.deepEqual(r.dispatched(), ["a", "b", "c"]);
    // b and c each wait for the other: neither would release memory before its time limit
    const fromB = r.api.reserveMemory("b", "s", 200);
    const fromC = r.api.reserveMemory("c", "s", 200);
    assert.equal(await fromB, false);
    await r.pool.finish("b");
    assert.equal(await fromC, true, "b's memory is free now");
    await r.pool.finish("c");
    assert.equal(r.memory.reservedMb, 0);
  });

  test("a job's request after its end is refused and reserves nothing", async () => {
    const r = rig({ usableMb: 1000 });
    r.send("a", 100);
    await r.pool.finish("a");
    assert.equal(await r.api.reserveMemory("a", "s1", 100), false);
    assert.equal(r.memory.reservedMb, 0);
  });
});

describe("warm containers", () => {
  const key = warmKey("docker", "default", "sha256:img", "runc");
  const created = (pool: FakePool): PoolTask[] => pool.tasks.filter((t) => t.name === "createWarm");

  test("each holds its memory from its creation; a job takes it over; ready ones make room for a job that needs it", async () => {
    const r = rig({ usableMb: 1000, warm: 2 });
    r.send("a", 300);
    await r.pool.finish("a"); // no job running now: the environment gets its warm containers
    assert.equal(created(r.pool).length, 2);
    assert.equal(r.memory.heldBy(WARM_GROUP), 600, "two creations of 300 MB under way");
    for (const [i, t] of created(r.pool).entries()) t.resolve({ kind: "ready", containerId: `w${i}`, cpuBaselineNs: 0, lower: null } satisfies WarmCreated);
    await until(() => r.warm.ready === 2);
    // past BACK_TO_BACK_GAP_MS: with b running, its environment's next container waits for a pause
    await new Promise((res) => setTimeout(res, BACK_TO_BACK_GAP_MS + 100));
    r.send("b", 300);
    assert.equal(r.pool.jobs().at(-1)!.warm?.containerId, "w0", "b runs in a warm container");
    assert.equal(r.memory.heldBy("b"), 300);
    assert.equal(r.memory.heldBy(WARM_GROUP), 300, "its reservation went to b");
    r.send("c", 600, "other");
    assert.equal(r.pool.jobs().length, 2, "c (another environment) waits: 300 + 300 + 600 > 1000");
    await until(() => r.dispatched().length === 3); // once the ready container is removed for it
    assert.deepEqual(r.dispatched(), ["a", "b", "c"]);
    assert.equal(r.pool.jobs().at(-1)!.warm, null);
    assert.equal(r.memory.heldBy(WARM_GROUP), 0);
    await r.pool.finish("b");
    await r.pool.finish("c");
  });

  test("a job waiting for a warm container under way starts cold after WARM_WAIT_MS", async () => {
    const r = rig({ usableMb: 1000, warm: 1, slots: 4 });
    r.warm.noteServed(key); // its containers are ready once started: jobs may wait for one
    r.send("a", 100);
    assert.equal(created(r.pool).length, 1, "a warm container is being made (and never ends)");
    r.send("b", 100);
    assert.deepEqual(r.dispatched(), ["a"], "b waits for it");
    await until(() => r.dispatched().length === 2, WARM_WAIT_MS + 10_000);
    assert.deepEqual(r.dispatched(), ["a", "b"], "b started without the warm container");
    assert.equal(r.pool.jobs()[1]!.warm, null);
    await r.pool.finish("a");
    await r.pool.finish("b");
    r.dispatcher.stop();
  });
});

