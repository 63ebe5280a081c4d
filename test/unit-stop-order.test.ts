/**
 * The main thread's record of why it stopped a job, without Docker: like the Python agent's
 * `_containers_killed`, the backend's kill and the engine's `oom` event share one slot, the last
 * one wins, and either wins over the timeout the worker saw; an OOM-killed container (the
 * engine's word at its exit) wins over both. The registry is the agent's own; the engine is a
 * fake whose kills do nothing.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import type Docker from "dockerode";
import { pino } from "pino";
import { Job } from "../src/jobs/job.js";
import type { GradingOutcome } from "../src/jobs/job-task.js";
import type { AgentEvents } from "../src/jobs/observed.js";
import { Outbox } from "../src/jobs/outbox.js";
import { JobRegistry } from "../src/jobs/registry.js";
import { WarmContainers } from "../src/jobs/warm-containers.js";
import { MemoryBudget } from "../src/limits/memory-budget.js";
import { PortPool } from "../src/limits/port-pool.js";
import type { AgentJobDone } from "../src/protocol/messages.js";

function rig() {
  const log = pino({ level: "silent" });
  const docker = { getContainer: () => ({ remove: async () => {}, kill: async () => {} }) } as unknown as Docker;
  const memory = new MemoryBudget(1000);
  const warm = new WarmContainers(0, "/nonexistent-tmp", () => ({ memoryMb: 100, labels: {} }), docker, log, memory, () => {});
  const outbox = new Outbox();
  const sent: AgentJobDone[] = [];
  outbox.attach((m) => void (m.type === "AgentJobDone" && sent.push(m)));
  const registry = new JobRegistry(docker, log, new PortPool({ begin: 64100, end: 64101 }), memory, warm, outbox, new EventEmitter<AgentEvents>(), {
    jobClosed: () => {}, slotFreed: () => {}, askMemory: () => Promise.resolve(false), memoryReleased: () => {},
  });
  /** A running job whose grading container is `grading-<id>`. */
  const running = (id: string): Job => {
    const job = new Job(id, "prev", `/nonexistent-tmp/${id}`);
    registry.add(job);
    job.phase = "running";
    registry.handedToWorker(job, new Promise(() => {}));
    registry.mainApi().containerCreated(id, `grading-${id}`, "grading");
    return job;
  };
  const kill = (id: string): void => registry.onKill({ type: "BackendKillJob", job_id: id, state: "" });
  const workerSaw = (job: Job, seen: { timeout: boolean; oomKilled: boolean }): string => {
    const outcome: GradingOutcome = { kind: "crash", text: "the container was killed", ...seen };
    registry.workerReturned(job, outcome);
    const done = sent.find((d) => d.job_id === job.id);
    assert.ok(done !== undefined, `${job.id} answered`);
    return done.result[0];
  };
  return { registry, running, kill, workerSaw };
}

test("the last of a kill and an oom event decides, over a timeout", () => {
  const r = rig();
  const oomThenKill = r.running("oom-then-kill");
  r.registry.onOom("grading-oom-then-kill");
  r.kill("oom-then-kill");
  assert.equal(r.workerSaw(oomThenKill, { timeout: true, oomKilled: false }), "killed");

  const killThenOom = r.running("kill-then-oom");
  r.kill("kill-then-oom");
  r.registry.onOom("grading-kill-then-oom");
  assert.equal(r.workerSaw(killThenOom, { timeout: true, oomKilled: false }), "overflow");

  const oomOnly = r.running("oom-only");
  r.registry.onOom("grading-oom-only");
  assert.equal(r.workerSaw(oomOnly, { timeout: true, oomKilled: false }), "overflow");
});

test("a kill after the engine's oom event still ends as overflow when the container was OOM-killed", () => {
  const r = rig();
  const job = r.running("oom-killed");
  r.registry.onOom("grading-oom-killed");
  r.kill("oom-killed");
  r.kill("oom-killed");
  assert.equal(r.workerSaw(job, { timeout: true, oomKilled: true }), "overflow");
});

test("an oom event of another container of the job (a student's) is not the job's", () => {
  const r = rig();
  const job = r.running("student-oom");
  r.registry.mainApi().containerCreated("student-oom", "student-1", "student");
  r.registry.onOom("student-1");
  assert.equal(r.workerSaw(job, { timeout: true, oomKilled: false }), "timeout");
});
