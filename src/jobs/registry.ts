/**
 * The registry of jobs on the main thread: which jobs are open, which a worker still holds (its
 * slot is not free until the worker removed the job's containers), which containers and host
 * ports each one holds (its memory reservations are in the MemoryBudget, under its id), and which
 * containers ran out of memory. It serves the MainApi that pool
 * threads call while they run jobs, handles kills, and is the single place a job closes: its
 * result goes to the outbox and its `jobClosed` event to observers from `close` only. It does not
 * know the queue: it tells the dispatcher through its hooks when a job closed or a slot freed.
 */
import type { EventEmitter } from "node:events";
import type Docker from "dockerode";
import { ENGINE_RECOVERY_MS } from "../docker/deadline.js";
import { killQuietly } from "../docker/engine.js";
import type { MemoryBudget } from "../limits/memory-budget.js";
import type { PortPool } from "../limits/port-pool.js";
import type { Outbox } from "./outbox.js";
import type { Logger } from "../log.js";
import type { AgentJobDone, BackendKillJob, BadFrameError, EncodedJobDone } from "../protocol/messages.js";
import { Job, RecentJobs } from "./job.js";
import { removeLeftovers } from "./leftovers.js";
import type { GradingOutcome, MainApi, PhaseTimings, WorkerOutcome } from "./job-task.js";
import type { AgentEvents } from "./observed.js";
import { composeOutcome, jobDone } from "./outcome.js";
import { taskVolumeName } from "./task-layer.js";
import type { WarmContainers } from "./warm-containers.js";

/** What the registry tells the dispatcher, which it does not import. */
export interface RegistryHooks {
  /** A job closed; `wasQueued`: it never left the queue (it leaves it now). */
  jobClosed(job: Job, wasQueued: boolean): void;
  /** A worker let go of a job: its slot and its memory are free. */
  slotFreed(): void;
  /** A student container's worker asks for memory (see MainApi.reserveMemory). */
  askMemory(job: Job, holder: string, memoryMb: number): Promise<boolean>;
  /** A student container's memory was released. */
  memoryReleased(): void;
}

interface Running {
  job: Job;
  /** Settles when the worker is done with the job, cleanup included. */
  settled: Promise<void>;
}

export class JobRegistry {
  private readonly jobs = new Map<string, Job>();
  /** Jobs handed to a worker that has not let go of them yet (open or closed). */
  private readonly running = new Map<string, Running>();
  private readonly recent = new RecentJobs();
  private readonly containerOwner = new Map<string, string>();
  private readonly oomContainers = new Set<string>();
  /** Where students connect for SSH debug (null: SSH debug is off); known once the agent started. */
  debugHost: string | null = null;
  /** The agent's folder of jobs' layer folders (layer-place.ts), or null; set once at start. */
  taskLayersDir: string | null = null;
  /** The agent's id (its containers' LABEL_AGENT), to list a dead worker's containers; set once at start. */
  agentId = "";

  constructor(
    private readonly docker: Docker,
    private readonly log: Logger,
    private readonly ports: PortPool,
    private readonly memory: MemoryBudget,
    private readonly warm: WarmContainers,
    private readonly outbox: Outbox,
    private readonly observed: EventEmitter<AgentEvents>,
    private readonly hooks: RegistryHooks,
  ) {}

  /** Open jobs: accepted, not yet closed. */
  get openJobs(): number {
    return this.jobs.size;
  }

  /** Jobs handed to a worker whose slot is not free yet. */
  get slotsInUse(): number {
    return this.running.size;
  }

  has(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  /** Records an accepted job (its ports already taken). */
  add(job: Job): void {
    this.jobs.set(job.id, job);
  }

  /** Answers a job that was never accepted: `crash` with `text`. */
  refuse(jobId: string, previousState: string, text: string, reason: string, log: Logger): void {
    log.warn({ reason }, "job refused");
    this.recent.add(jobId);
    this.outbox.send(jobDone(jobId, "crash", text, previousState));
    this.observed.emit("jobClosed", { jobId, result: "crash", totalMs: 0, queueMs: null, timings: {} });
  }

  // ---- workers ---------------------------------------------------------------------------

  /** A worker took the job; `settled` settles once it let go of it (see workerFinished). */
  handedToWorker(job: Job, settled: Promise<void>): void {
    this.running.set(job.id, { job, settled });
  }

  /** The job's pool task returned. */
  workerReturned(job: Job, outcome: WorkerOutcome): void {
    if (outcome.kind === "reported") {
      this.log.debug({ job: job.id, phases: outcome.timings }, "job cleaned up");
      this.observed.emit("jobCleanedUp", { jobId: job.id, cleanupMs: outcome.timings?.cleanup ?? null });
      return;
    }
    this.closeWith(job, outcome);
  }

  /**
   * The job's pool task failed (its thread died): the job crashed, and what the worker left is
   * removed from here. Settles once its containers are gone (or the engine did not let them go
   * within ENGINE_RECOVERY_MS): only then does workerFinished release its slot, memory and ports.
   */
  async workerFailed(job: Job, err: Error): Promise<void> {
    this.log.error({ job: job.id, err: err.message }, "worker failed while running the job");
    this.close(job, composeOutcome(
      { jobId: job.id, previousState: job.previousState, stoppedBy: job.stoppedBy },
      { kind: "crash", text: "The agent failed while running this job. Please retry.", timeout: false, oomKilled: false },
    ));
    await this.cleanupAfter(job, ENGINE_RECOVERY_MS);
  }

  /**
   * The worker let go of the job. Only now are its ports and its memory released: the worker may
   * call the main thread until its very last cleanup step, and the job's containers (and their
   * published ports) are gone.
   */
  workerFinished(job: Job): void {
    this.ports.release(job.ports);
    this.memory.releaseGroup(job.id);
    this.running.delete(job.id);
    this.hooks.slotFreed();
  }

  /** Whether a job is between its worker taking it and its result (cleanups do not count). */
  anyJobRunning(): boolean {
    for (const r of this.running.values()) if (r.job.phase === "running") return true;
    return false;
  }

  /** Open jobs, and closed ones whose worker is still removing what they used. */
  unfinishedJobs(): Job[] {
    return [...new Set([...this.jobs.values(), ...[...this.running.values()].map((r) => r.job)])];
  }

  /** Containers that open jobs hold (for reconciliation: not orphans). */
  jobContainers(): Set<string> {
    const owned = new Set<string>();
    for (const job of this.jobs.values()) for (const id of job.containers) owned.add(id);
    return owned;
  }

  /** The layered /task volumes that open jobs, and closed ones still cleaning up, may hold (task-layer.ts). */
  jobVolumes(): Set<string> {
    return new Set(this.unfinishedJobs().map((job) => taskVolumeName(job.jobDir)));
  }

  /** A job by id, also once it is closed while its worker still cleans up after it. */
  private jobOf(jobId: string): Job | undefined {
    return this.jobs.get(jobId) ?? this.running.get(jobId)?.job;
  }

  /** The calls workers make, over each pool thread's channel (see MAIN_API_PORT). */
  mainApi(): MainApi {
    return {
      jobOutcome: (jobId, outcome) => {
        const job = this.jobs.get(jobId);
        if (job !== undefined) this.closeWith(job, outcome);
      },
      containerCreated: (jobId, containerId, role) => {
        const job = this.jobs.get(jobId);
        this.containerOwner.set(containerId, jobId);
        if (job === undefined || job.phase === "closed") return false;
        job.containers.add(containerId);
        this.log.debug({ job: jobId, container: containerId, role }, "container created");
        if (job.killed) {
          void killQuietly(this.docker, containerId, this.log);
          return false;
        }
        return true;
      },
      containerRemoved: (jobId, containerId) => {
        this.jobOf(jobId)?.containers.delete(containerId);
        this.containerOwner.delete(containerId);
        this.oomContainers.delete(containerId);
      },
      wasOutOfMemory: (containerId) => this.oomContainers.has(containerId),
      allocatePorts: (jobId, count) => {
        const job = this.jobs.get(jobId);
        if (job === undefined || this.debugHost === null) return null;
        const got = this.ports.take(count);
        if (got !== null) for (const p of got) job.ports.add(p);
        return got;
      },
      releasePorts: (jobId, ports) => {
        const job = this.jobOf(jobId);
        for (const p of ports) job?.ports.delete(p);
        this.ports.release(ports);
      },
      reserveMemory: (jobId, holder, memoryMb) => {
        const job = this.jobs.get(jobId);
        if (job === undefined || job.phase !== "running" || !this.running.has(jobId)) return Promise.resolve(false);
        return this.hooks.askMemory(job, holder, memoryMb);
      },
      releaseMemory: (jobId, holder) => {
        if (this.memory.release(jobId, holder) > 0) this.hooks.memoryReleased();
      },
      taskWeight: (jobId, heavy) => {
        const job = this.jobs.get(jobId);
        if (job?.warmEnv != null && job.warmTask !== null) this.warm.noteTaskWeight(job.warmEnv, job.warmTask, heavy);
      },
      taskFolderChanged: (jobId, was, now) => {
        const job = this.jobs.get(jobId);
        if (job?.warmEnv != null && job.warmTask !== null) this.warm.noteTaskFolderChanged(job.warmEnv, job.warmTask, was, now);
      },
      sshDebug: (jobId, port, user, password) => {
        const job = this.jobs.get(jobId);
        if (job === undefined || job.phase !== "running" || job.sshSent || this.debugHost === null) return;
        job.sshSent = true;
        this.outbox.send({ type: "AgentJobSSHDebug", job_id: jobId, host: this.debugHost, port, user, password });
      },
    };
  }

  // ---- the backend and the engine ----------------------------------------------------------

  onKill(msg: BackendKillJob): void {
    const job = this.jobs.get(msg.job_id);
    const log = this.log.child({ job: msg.job_id });
    if (job === undefined) {
      if (this.recent.has(msg.job_id)) {
        log.info("kill for a job that already ended: nothing to do");
        return;
      }
      log.warn("kill for a job this agent does not know: answering killed");
      this.outbox.send(jobDone(msg.job_id, "killed", "", msg.state));
      return;
    }
    job.stoppedBy = "killed"; // a kill after an oom event overwrites it, as in the Python agent
    if (job.killed) return;
    job.killed = true;
    log.info({ phase: job.phase }, "killing job");
    if (job.phase === "queued") {
      this.close(job, jobDone(job.id, "killed", "", job.previousState));
      return;
    }
    for (const id of job.containers) void killQuietly(this.docker, id, log);
  }

  /** A frame that could not be used: a job frame whose id could be read still gets its answer. */
  onBadFrame(err: BadFrameError): void {
    this.log.warn({ type: err.messageType, size: err.size, reason: err.message }, "dropped a bad frame from the backend");
    if (err.messageType === "BackendNewJob" && err.jobId !== null && !this.jobs.has(err.jobId)) {
      this.recent.add(err.jobId);
      this.outbox.send(jobDone(err.jobId, "crash", `The agent could not read this job: ${err.message}`, ""));
    }
  }

  /** The engine reported an `oom` event: the container is killed, and its job told if it grades. */
  onOom(containerId: string): void {
    const jobId = this.containerOwner.get(containerId);
    if (jobId === undefined) return;
    const job = this.jobs.get(jobId);
    this.oomContainers.add(containerId);
    this.log.info({ job: jobId, container: containerId }, "container ran out of memory: killing it");
    // the first container a job records is its grading container
    if (job !== undefined && job.containers.values().next().value === containerId) job.stoppedBy = "overflow";
    void killQuietly(this.docker, containerId, this.log);
  }

  // ---- closing -----------------------------------------------------------------------------

  private closeWith(job: Job, outcome: GradingOutcome): void {
    const facts = { jobId: job.id, previousState: job.previousState, stoppedBy: job.stoppedBy };
    // a warm container that gave a result: its environment's warm containers work
    if (job.ranWarm && job.warmEnv !== null && (outcome.kind === "result" || outcome.kind === "encoded-result")) this.warm.noteServed(job.warmEnv);
    this.close(job, composeOutcome(facts, outcome), outcome.timings);
  }

  /** The single closing path of a job. */
  close(job: Job, done: AgentJobDone | EncodedJobDone, timings: PhaseTimings = {}): void {
    const wasQueued = job.phase === "queued";
    if (!job.close()) return;
    if (job.warmEnv !== null) this.warm.noteJobEnded(job.warmEnv);
    this.jobs.delete(job.id);
    this.recent.add(job.id);
    // A running job's ports are released when its worker is done with its containers.
    if (!this.running.has(job.id)) this.ports.release(job.ports);
    const totalMs = Math.round(performance.now() - job.startedAt);
    const result = done.type === "EncodedJobDone" ? done.result : done.result[0];
    const stderrTail = done.type === "AgentJobDone" ? done.stderrTail : undefined;
    const detail = done.type === "AgentJobDone" ? done.detail : undefined;
    this.log.info({ job: job.id, result, grade: done.grade, ms: totalMs, phases: timings, detail, stderrTail }, "job done");
    this.outbox.send(done);
    this.observed.emit("jobClosed", {
      jobId: job.id,
      result,
      totalMs,
      queueMs: job.dispatchedAt === null ? null : Math.round(job.dispatchedAt - job.startedAt),
      timings,
    });
    this.hooks.jobClosed(job, wasQueued);
  }

  /**
   * Closes the given jobs as `crash` with `reason`, kills their containers, and waits (bounded)
   * for their workers to finish cleaning up; what a worker did not remove in time is removed here.
   */
  async endAll(jobs: Job[], reason: string, timeoutMs = 8000): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const job of jobs) {
      const run = this.running.get(job.id);
      job.killed = true; // containers created from now on are refused
      this.close(job, jobDone(job.id, "crash", reason, job.previousState));
      if (run === undefined) continue;
      for (const id of job.containers) void killQuietly(this.docker, id, this.log);
      waits.push(
        Promise.race([run.settled, new Promise<void>((r) => setTimeout(r, timeoutMs))]).then(() =>
          this.running.has(job.id) ? this.cleanupAfter(job, timeoutMs) : undefined,
        ),
      );
    }
    await Promise.all(waits);
  }

  /** Removes what a job's worker left (it died, or did not let go in time), for at most `boundMs`. */
  private async cleanupAfter(job: Job, boundMs: number): Promise<void> {
    const containers = [...job.containers];
    await removeLeftovers({ docker: this.docker, log: this.log, agent: this.agentId, taskLayersDir: this.taskLayersDir }, job, boundMs);
    for (const id of containers) if (!job.containers.has(id)) this.containerOwner.delete(id);
  }
}
