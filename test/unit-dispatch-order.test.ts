/**
 * First come, first served through the task folder's look-up, without Docker: each job's look-up
 * is asynchronous and may answer after the next job's, and the jobs still reach the queue (and
 * the worker pool) in the order they arrived; a look-up that hangs stops holding the others back
 * after its patience. The look-up is a hook the test answers by hand; the registry and the
 * dispatcher are the agent's own, the worker pool a fake whose tasks never end.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import type Docker from "dockerode";
import { pino } from "pino";
import type { Piscina } from "piscina";
import type { RuntimeSpec } from "../src/config.js";
import type { AdmissionSnapshot } from "../src/jobs/admission.js";
import { Arrivals } from "../src/jobs/arrivals.js";
import { Dispatcher } from "../src/jobs/dispatch.js";
import type { JobSpec } from "../src/jobs/job-task.js";
import type { AgentEvents } from "../src/jobs/observed.js";
import { Outbox } from "../src/jobs/outbox.js";
import { JobRegistry } from "../src/jobs/registry.js";
import { WarmContainers } from "../src/jobs/warm-containers.js";
import { MemoryBudget } from "../src/limits/memory-budget.js";
import { PortPool } from "../src/limits/port-pool.js";
import type { AgentJobDone, BackendNewJob } from "../src/protocol/messages.js";

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("Arrivals", () => {
  test("what follows a look-up runs in arrival order, whatever order the look-ups answer in", async () => {
    const ran: string[] = [];
    const a = new Arrivals(60_000);
    let answerFirst!: (v: () => void) => void;
    a.add(new Promise((r) => (answerFirst = r)));
    a.add(Promise.resolve(() => void ran.push("second")));
    a.add(() => void ran.push("third (no look-up)"));
    await tick();
    assert.equal(ran.length, 0, "the first look-up holds the others back");
    assert.equal(a.pending, 1);
    answerFirst(() => void ran.push("first"));
    await tick();
    assert.deepEqual(ran, ["first", "second", "third (no look-up)"]);
    a.add(() => void ran.push("fourth"));
    assert.equal(ran.at(-1), "fourth", "runs at once when nothing waits before it");
  });

  test("a look-up past its patience lets the arrivals behind it go, and goes itself when it answers", async () => {
    const ran: string[] = [];
    const overdue: number[] = [];
    const a = new Arrivals(50, (behind) => overdue.push(behind));
    let answerSlow!: (v: () => void) => void;
    a.add(new Promise((r) => (answerSlow = r)));
    a.add(() => void ran.push("next"));
    await tick(10);
    assert.equal(ran.length, 0);
    await tick(100);
    assert.deepEqual(ran, ["next"]);
    assert.deepEqual(overdue, [1], "said once, with how many were behind it");
    answerSlow(() => void ran.push("slow"));
    await tick();
    assert.deepEqual(ran, ["next", "slow"]);
    assert.equal(a.pending, 0);
  });
});

const runc: RuntimeSpec = { runtime: "runc", envtype: "docker", runAsRoot: false, shared: true, gpu: false };

/** The agent's registry and dispatcher; each job's task folder look-up waits until the test answers it. */
function rig(patienceMs = 60_000) {
  const log = pino({ level: "silent" });
  const docker = { getContainer: () => ({ remove: async () => {}, kill: async () => {} }) } as unknown as Docker;
  const memory = new MemoryBudget(10_000);
  const outbox = new Outbox();
  const sent: AgentJobDone[] = [];
  outbox.attach((m) => void (m.type === "AgentJobDone" && sent.push(m)));
  const dispatchedIds: string[] = [];
  const pool = { run: (task: JobSpec) => (dispatchedIds.push(task.jobId), new Promise(() => {})) };
  const lookups = new Map<string, (found: boolean) => void>();
  // eslint-disable-next-line prefer-const
  let dispatcher: Dispatcher;
  const warm = new WarmContainers(0, "/nonexistent-tmp", () => ({ memoryMb: 100, labels: {} }), docker, log, memory, () => dispatcher.pump());
  const registry = new JobRegistry(docker, log, new PortPool({ begin: 64100, end: 64101 }), memory, warm, outbox, new EventEmitter<AgentEvents>(), {
    jobClosed: (job, wasQueued) => dispatcher.jobClosed(job, wasQueued),
    slotFreed: () => dispatcher.pump(),
    askMemory: (job, holder, mb) => dispatcher.askMemory(job, holder, mb),
    memoryReleased: () => dispatcher.pump(),
  });
  dispatcher = new Dispatcher(10, "/nonexistent-tmp", log, registry, new PortPool({ begin: 64102, end: 64103 }), memory, warm, outbox, {
    lookUpTaskFolder: (taskDir) => new Promise((resolve) => lookups.set(taskDir.split("/").pop()!, resolve)),
    lookupPatienceMs: patienceMs,
  });
  dispatcher.usePool(pool as unknown as Piscina);
  const snapshot: AdmissionSnapshot = {
    environments: { docker: { default: { id: "sha256:img", title: "d", created: 1, ports: [], runtime: "runc", advertised: true } } },
    runtimes: new Map([["docker", runc]]),
    usableMemoryMb: 10_000, debugHost: null, tasksRoot: "/srv/tasks", agentId: "a", diskLimit: true,
  };
  /** A job of task `id` (its look-up is `lookups.get(id)`), or a task-less one. */
  const send = (id: string, taskless = false, memory = 100): void => {
    const msg: BackendNewJob = {
      type: "BackendNewJob", job_id: id, course_id: taskless ? null : "course", task_id: taskless ? null : id, task_problems: {},
      inputdata: {}, environment_type: "docker", environment: "default",
      environment_parameters: { limits: { time: 10, hard_time: 30, memory } }, debug: false,
    };
    dispatcher.onNewJob(msg, snapshot);
  };
  const answer = async (id: string, found = true): Promise<void> => {
    const resolve = lookups.get(id);
    assert.ok(resolve !== undefined, `${id}'s task folder was looked up`);
    resolve(found);
    await tick();
  };
  return { send, answer, dispatched: dispatchedIds, sent, registry };
}

describe("dispatch keeps arrival order through the task folder look-up", () => {
  test("a job whose look-up answers after the next job's still leaves the queue first", async () => {
    const r = rig();
    r.send("first");
    r.send("second");
    r.send("third", true);
    await r.answer("second");
    assert.deepEqual(r.dispatched, [], "second and the task-less third wait for first's look-up");
    await r.answer("first");
    assert.deepEqual(r.dispatched, ["first", "second", "third"]);
  });

  test("a missing task is refused in its turn; a job killed while its folder is looked up never starts", async () => {
    const r = rig();
    r.send("gone");
    r.send("killed");
    r.send("after");
    r.registry.onKill({ type: "BackendKillJob", job_id: "killed", state: "" });
    await r.answer("after");
    await r.answer("killed");
    assert.deepEqual(r.dispatched, []);
    await r.answer("gone", false);
    assert.deepEqual(r.dispatched, ["after"]);
    assert.deepEqual(r.sent.map((d) => [d.job_id, d.result[0]]), [["killed", "killed"], ["gone", "crash"]]);
  });

  test("a look-up that hangs holds the jobs behind it back for its patience only", async () => {
    const r = rig(100);
    r.send("hung");
    r.send("next");
    await r.answer("next");
    assert.deepEqual(r.dispatched, []);
    await tick(200);
    assert.deepEqual(r.dispatched, ["next"]);
    await r.answer("hung");
    assert.deepEqual(r.dispatched, ["next", "hung"]);
  });

  // The Python agent looks for the task folder before it reads the parameters and the memory.
  test("a job asking too much memory is refused for its missing task folder first, else for its memory, in its turn", async () => {
    const r = rig();
    r.send("first");
    r.send("gone-and-big", false, 50_000);
    r.send("big", false, 50_000);
    await r.answer("big");
    await r.answer("gone-and-big", false);
    assert.equal(r.sent.length, 0, "both wait for first's look-up");
    await r.answer("first");
    assert.deepEqual(r.dispatched, ["first"]);
    assert.deepEqual(r.sent.map((d) => [d.job_id, d.result]), [
      ["gone-and-big", ["crash", "Task unavailable on agent. Please retry later, the agents should synchronize soon. If the error persists, please contact your course administrator."]],
      ["big", ["crash", "Not enough memory on agent (available: 10000MB). Please contact your course administrator."]],
    ]);
  });

  test("a kill while a refused job's folder is looked up: one answer, killed", async () => {
    const r = rig();
    r.send("big", false, 50_000);
    r.registry.onKill({ type: "BackendKillJob", job_id: "big", state: "" });
    await r.answer("big");
    assert.deepEqual(r.sent.map((d) => [d.job_id, d.result[0]]), [["big", "killed"]]);
  });
});
