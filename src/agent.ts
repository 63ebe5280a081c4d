/**
 * The grading agent's main-thread core: checks each BackendNewJob, queues it, runs it in the
 * worker pool, and closes it exactly once. It owns the bookkeeping that must outlive a worker
 * (which containers and ports each job holds), kills, the engine's event stream and cleanup.
 * It knows nothing of ZeroMQ: messages go out through `send`.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import path from "node:path";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/esm/node-adapter.mjs";
import type Docker from "dockerode";
import { Piscina } from "piscina";
import type { AgentConfig, RuntimeSpec } from "./config.js";
import { DEFAULT_STUDENT_CONTAINERS } from "./config.js";
import { detectDebugHost } from "./debug-host.js";
import { connectDocker, killQuietly, removeQuietly } from "./docker/engine.js";
import { DockerEventWatcher } from "./docker/events.js";
import { LABEL_AGENT, agentId, containerLabels } from "./docker/labels.js";
import { removeLeftoverContainers, removeLeftoverJobDirectories } from "./docker/reaper.js";
import { findOrphans } from "./docker/reconcile.js";
import { discoverEnvironments, type ImageSummary } from "./environments/images.js";
import { detectRuntimes } from "./environments/runtimes.js";
import { Job, RecentJobs } from "./jobs/job.js";
import { JOB_DIR_PREFIX, removeJobDirectory } from "./jobs/job-directory.js";
import { parseJobParameters, type JobParameters } from "./jobs/job-params.js";
import {
  mainApiPort,
  type GradingOutcome, type JobTask, type MainApi, type PhaseTimings, type StudentEnvironment, type WorkerOutcome,
} from "./jobs/job-task.js";
import { composeOutcome, jobDone } from "./jobs/outcome.js";
import { PortPool } from "./limits/port-pool.js";
import { WarmContainers, warmKey } from "./jobs/warm-containers.js";
import type { Logger } from "./log.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./protocol/container-stream.js";
import type {
  AgentHello, AgentJobDone, BackendKillJob, BackendNewJob, BadFrameError, EncodedJobDone, Environments, OutgoingMessage,
} from "./protocol/messages.js";
import { openFileLimits, totalMemoryMb } from "./system.js";
import { dockerAddress, dockerUnreachableMessage, gradingImageAdvice } from "./ops/self-checks.js";

/** Course and task ids as INGInious accepts them; anything else could escape the tasks folder. */
const ID = /^[a-zA-Z0-9_\-]+$/;
const SSH_DEBUG_LIMIT_SECONDS = 30 * 60;

export class AgentStartError extends Error {}

/** What the agent reports to observers (metrics, tests). */
export interface JobClosedInfo {
  jobId: string;
  result: string;
  /** Milliseconds from the job's arrival to its result. */
  totalMs: number;
  /** Milliseconds it waited for a slot (null when it never reached a worker). */
  queueMs: number | null;
  timings: PhaseTimings;
}

export interface AgentEvents {
  jobClosed: [info: JobClosedInfo];
  /** A worker finished removing what a job used, after the job's result went out. */
  jobCleanedUp: [info: { jobId: string; cleanupMs: number | null }];
}

interface Running {
  job: Job;
  /** Settles when the worker is done with the job, cleanup included. */
  settled: Promise<void>;
}

export class GradingAgent {
  readonly id: string;
  private environments: Environments = {};
  private runtimes = new Map<string, RuntimeSpec>();
  private cgroupVersion: 1 | 2 = 1;
  private pool: Piscina | null = null;
  private events: DockerEventWatcher | null = null;
  private ports: PortPool;
  private debugHostValue: string | null = null;
  private readonly jobs = new Map<string, Job>();
  private readonly queue: Array<{ job: Job; task: JobTask }> = [];
  private readonly warm: WarmContainers;
  private readonly running = new Map<string, Running>();
  private readonly recent = new RecentJobs();
  private readonly containerOwner = new Map<string, string>();
  private readonly oomContainers = new Set<string>();
  private readonly nofile: { soft: number; hard: number };
  private readonly memoryPerSlotMb: number;
  private readonly tmpdir: string;
  private readonly tasks: string;
  private closing = false;
  private shuttingDown: Promise<void> | null = null;
  /** Set while jobs are being ended in bulk (restart, shutdown): nothing new leaves the queue. */
  private draining = false;
  private reconcileTimer: NodeJS.Timeout | null = null;
  /** Where messages for the backend go; replaced by the link on each connection. */
  send: (message: OutgoingMessage) => void = () => {};
  /** Observers' view of the agent: one event per closed job. */
  readonly observed = new EventEmitter<AgentEvents>();

  private constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    readonly docker: Docker,
  ) {
    this.tmpdir = path.resolve(config.tmpdir);
    this.tasks = path.resolve(config.tasks);
    this.id = agentId(this.tmpdir);
    this.ports = new PortPool(config.debugPorts);
    const limits = openFileLimits();
    this.nofile = {
      soft: Math.max(64, Math.floor(limits.soft / config.concurrency)),
      hard: Math.max(64, Math.floor(limits.hard / config.concurrency)),
    };
    this.memoryPerSlotMb = Math.floor(totalMemoryMb() / config.concurrency);
    this.warm = new WarmContainers(config.warm, this.tmpdir, () => ({
      jobDirMarker: this.id,
      memoryMb: Math.min(256, this.memoryPerSlotMb),
      labels: containerLabels(this.id, "", "warm"),
      nofile: this.nofile,
      pidsLimit: config.pidsLimit,
      cgroupVersion: this.cgroupVersion,
      logLevel: log.level,
      logDestination: config.logDestination ?? 1,
    }), this.docker, log, () => this.pump());
  }

  /** Connects to Docker, finds environments, removes what an earlier run left, starts the pool. */
  static async start(config: AgentConfig, log: Logger): Promise<GradingAgent> {
    const agent = new GradingAgent(config, log, connectDocker());
    await agent.init();
    return agent;
  }

  private async init(): Promise<void> {
    const log = this.log;
    await fs.mkdir(this.tmpdir, { recursive: true });
    let info: { CgroupVersion?: string; Runtimes?: Record<string, unknown> };
    try {
      info = (await this.docker.info()) as typeof info;
    } catch (err) {
      throw new AgentStartError(dockerUnreachableMessage(err, dockerAddress()));
    }
    this.cgroupVersion = info.CgroupVersion === "2" ? 2 : 1;
    const runtimes = this.config.runtimes ?? detectRuntimes(Object.keys(info.Runtimes ?? {}), this.config.ssh);
    if (runtimes.length === 0) {
      throw new AgentStartError("no usable Docker runtime: none of runc, crun or nvidia is installed; name one with --runtime");
    }
    for (const rt of runtimes) {
      this.runtimes.set(rt.envtype, rt);
      log.info({ runtime: rt.runtime, envtype: rt.envtype, root: rt.runAsRoot }, "using runtime");
    }
    await this.discover();

    if (this.config.debugHost !== null) this.debugHostValue = this.config.debugHost;
    else {
      this.debugHostValue = detectDebugHost();
      if (this.debugHostValue === null) log.warn("no address found for SSH debug: SSH debug is off (set --debug-host)");
      else log.info({ host: this.debugHostValue }, "SSH debug host chosen from the default route; set --debug-host if this host is behind NAT");
    }

    await removeLeftoverContainers(this.docker, this.id, log);
    await removeLeftoverJobDirectories(this.tmpdir, this.id, log);

    this.events = new DockerEventWatcher(this.docker, this.id, log);
    this.events.on("oom", (id) => this.onOom(id));
    this.events.on("die", (id) => this.warm.onDie(id));
    // After a break the engine may have restarted: containers of ended jobs whose removal failed go now.
    this.events.on("resumed", () => void this.reconcile(5));
    this.events.start();

    this.reconcileTimer = setInterval(() => void this.reconcile(), 30_000);
    this.reconcileTimer.unref();

    const threads = this.config.poolThreads;
    this.pool = new Piscina({
      filename: new URL("../workers/job.js", import.meta.url).href,
      minThreads: Math.min(threads, 2),
      maxThreads: threads,
      concurrentTasksPerWorker: Math.max(1, Math.ceil((this.config.concurrency * 2) / threads)),
      atomics: "disabled",
      idleTimeout: 30_000,
    });
    // each pool thread sends, once, its end of the channel its jobs call MainApi over
    this.pool.on("message", (message: unknown) => {
      const port = mainApiPort(message);
      if (port === null) return;
      Comlink.expose(this.mainApi(), nodeEndpoint(port as never));
      port.unref(); // the pool keeps the agent alive, not this channel
    });
    log.info({ threads, concurrency: this.config.concurrency, agent: this.id }, "agent ready");
  }

  /** Reads the grading images again (at start and before each hello). */
  async discover(): Promise<void> {
    const images = (await this.docker.listImages({
      filters: { label: ["org.inginious.grading.name"] },
    })) as unknown as ImageSummary[];
    const { environments, problems } = discoverEnvironments(images, [...this.runtimes.values()]);
    for (const p of problems) this.log.warn({ image: p.image, environment: p.name }, p.reason);
    let count = 0;
    for (const [envtype, byName] of Object.entries(environments)) {
      for (const [name, env] of Object.entries(byName)) {
        count++;
        this.log.info({ envtype, environment: name, image: env.id, advertised: env.advertised }, "environment available");
      }
    }
    const advice = gradingImageAdvice(count, problems.length);
    if (advice !== null) this.log.warn({ check: "images" }, advice);
    this.environments = environments;
  }

  hello(): AgentHello {
    return {
      type: "AgentHello",
      friendly_name: this.config.friendlyName,
      available_job_slots: this.config.concurrency,
      available_environments: this.environments,
    };
  }

  get runningJobs(): number {
    return this.jobs.size;
  }

  get dockerEventsAlive(): boolean {
    return this.events?.alive ?? false;
  }

  /** Jobs handed to a worker whose slot is not free yet (metrics). */
  get dispatchedJobs(): number {
    return this.running.size;
  }

  /** Jobs waiting for a slot (metrics). */
  get warmContainers(): number {
    return this.warm.ready;
  }

  get queuedJobs(): number {
    return this.queue.length;
  }

  /** Times the engine's event stream was opened again (metrics). */
  get dockerEventRestarts(): number {
    return this.events?.restarts ?? 0;
  }

  // ---- backend messages ------------------------------------------------------------------

  onNewJob(msg: BackendNewJob): void {
    const log = this.log.child({ job: msg.job_id });
    if (this.jobs.has(msg.job_id)) {
      log.warn("a job with this id is already running: ignoring the second one");
      return;
    }
    this.send({ type: "AgentJobStarted", job_id: msg.job_id });
    const stateValue = msg.inputdata["@state"];
    const previousState = typeof stateValue === "string" ? stateValue : "";
    const crash = (text: string, why: string): void => {
      log.warn({ reason: why }, "job refused");
      this.recent.add(msg.job_id);
      this.send(jobDone(msg.job_id, "crash", text, previousState));
      this.observed.emit("jobClosed", { jobId: msg.job_id, result: "crash", totalMs: 0, queueMs: null, timings: {} });
    };
    if (this.closing) return crash("The agent is shutting down. Please retry.", "agent shutting down");

    let params: JobParameters;
    try {
      params = parseJobParameters(msg.environment_parameters);
    } catch (err) {
      return crash("The agent is unable to parse the parameters", (err as Error).message);
    }
    const env = this.environments[msg.environment_type]?.[msg.environment];
    if (env === undefined) {
      return crash(
        "This environment is not available in this agent. Please contact your course administrator.",
        `unknown environment ${msg.environment_type}/${msg.environment}`,
      );
    }
    const taskless = msg.course_id === null && msg.task_id === null;
    let taskDir: string | null = null;
    let courseDir: string | null = null;
    if (!taskless) {
      if (msg.course_id === null || msg.task_id === null || !ID.test(msg.course_id) || !ID.test(msg.task_id)) {
        return crash("This job names an invalid course or task. Please contact your course administrator.", "invalid course or task id");
      }
      courseDir = path.join(this.tasks, msg.course_id);
      taskDir = path.join(courseDir, msg.task_id);
    }
    let memoryMb = params.limits.memoryMb;
    if (memoryMb < 20) memoryMb = 20;
    else if (memoryMb > this.memoryPerSlotMb) {
      return crash(
        `Not enough memory on agent (available: ${this.memoryPerSlotMb}MB). Please contact your course administrator.`,
        `asks for ${memoryMb}MB`,
      );
    }
    const wantedPorts = [...env.ports];
    if (msg.debug === "ssh" && !wantedPorts.includes(22)) wantedPorts.push(22);
    let time = params.limits.time;
    let hardTime = params.limits.hardTime;
    const ports: Record<number, number> = {};
    const job = new Job(msg.job_id, previousState, path.join(this.tmpdir, jobDirName(msg.job_id)));
    if (wantedPorts.length > 0) {
      if (this.debugHostValue === null && msg.debug === "ssh") {
        return crash("SSH debug is not available on this agent. Please contact your course administrator.", "no debug host");
      }
      const got = this.ports.take(wantedPorts.length);
      if (got === null) return crash("No ports are available right now. Please retry later.", "no free debug port");
      wantedPorts.forEach((p, i) => {
        ports[p] = got[i]!;
        job.ports.add(got[i]!);
      });
      time = SSH_DEBUG_LIMIT_SECONDS;
      hardTime = SSH_DEBUG_LIMIT_SECONDS;
    }
    const runtime = this.runtimes.get(msg.environment_type)!;
    const studentEnvironments: Record<string, StudentEnvironment> = {};
    for (const [name, e] of Object.entries(this.environments[msg.environment_type] ?? {})) {
      studentEnvironments[name] = { image: e.id, runtime: e.runtime };
    }
    const task: JobTask = {
      jobId: msg.job_id,
      jobDir: job.jobDir,
      jobDirMarker: this.id,
      taskDir,
      courseDir,
      image: env.id,
      runtime: env.runtime,
      envtype: msg.environment_type,
      environment: msg.environment,
      time,
      hardTime,
      memoryMb,
      diskMb: params.limits.diskMb,
      network: params.networkGrading,
      ports,
      inputdata: msg.inputdata,
      debug: msg.debug,
      runCmd: params.runCmd,
      envtypes: [...this.runtimes.keys()],
      runAsRoot: runtime.runAsRoot,
      labels: containerLabels(this.id, msg.job_id, "grading"),
      studentLabels: containerLabels(this.id, msg.job_id, "student"),
      nofile: this.nofile,
      pidsLimit: this.config.pidsLimit,
      studentContainers: this.config.studentContainers ?? DEFAULT_STUDENT_CONTAINERS,
      cgroupVersion: this.cgroupVersion,
      maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
      studentEnvironments,
      sshAllowed: this.config.ssh,
      envtypeHasSsh: msg.environment_type.includes("ssh"),
      logLevel: this.log.level,
      logDestination: this.config.logDestination ?? 1,
      warm: null,
    };
    // Jobs with no network and no ports may run in a warm container of their environment.
    const warmFor = !params.networkGrading && wantedPorts.length === 0
      ? warmKey(msg.environment_type, msg.environment, env.id, env.runtime)
      : null;
    this.jobs.set(job.id, job);
    if (taskDir !== null) {
      // The only file-system look-up on this thread: one stat, asynchronous.
      fs.stat(taskDir).then(
        (st) => (st.isDirectory() ? this.enqueue(job, task, warmFor) : this.refuseMissingTask(job, log)),
        () => this.refuseMissingTask(job, log),
      );
    } else this.enqueue(job, task, warmFor);
  }

  private refuseMissingTask(job: Job, log: Logger): void {
    log.warn("task unavailable on this agent");
    this.close(job, jobDone(job.id, "crash",
      "Task unavailable on agent. Please retry later, the agents should synchronize soon. If the error persists, please contact your course administrator.",
      job.previousState));
  }

  onKill(msg: BackendKillJob): void {
    const job = this.jobs.get(msg.job_id);
    const log = this.log.child({ job: msg.job_id });
    if (job === undefined) {
      if (this.recent.has(msg.job_id)) {
        log.info("kill for a job that already ended: nothing to do");
        return;
      }
      log.warn("kill for a job this agent does not know: answering killed");
      this.send(jobDone(msg.job_id, "killed", "", msg.state));
      return;
    }
    if (job.killed) return;
    job.killed = true;
    log.info({ phase: job.phase }, "killing job");
    if (job.phase === "queued") {
      const i = this.queue.findIndex((q) => q.job === job);
      if (i >= 0) this.queue.splice(i, 1);
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
      this.send(jobDone(err.jobId, "crash", `The agent could not read this job: ${err.message}`, ""));
    }
  }

  // ---- running jobs ----------------------------------------------------------------------

  private enqueue(job: Job, task: JobTask, warmKey: string | null): void {
    if (job.phase !== "queued") return;
    if (job.killed) return;
    if (warmKey !== null) {
      this.warm.noteDemand(warmKey, task.memoryMb);
      job.warmEnv = warmKey;
    }
    this.queue.push({ job, task });
    this.pump();
  }

  private pump(): void {
    if (this.draining || this.closing) return;
    // Jobs that wait, in order, for a warm container already being made for their environment:
    // it is ready sooner than a cold one would be, and a cold start meanwhile would make the
    // engine do both. At most one job per container under way.
    const waiting: typeof this.queue = [];
    const promised = new Map<string, number>();
    while (this.running.size < this.config.concurrency && this.queue.length > 0) {
      const queued = this.queue.shift()!;
      const { job, task } = queued;
      const warmKey = job.warmEnv;
      if (job.phase !== "queued") continue;
      const warm = warmKey !== null ? this.warm.take(warmKey) : null;
      if (warm !== null) {
        job.jobDir = warm.jobDir;
        job.ranWarm = true;
        this.dispatch(job, { ...task, jobDir: warm.jobDir, warm: { containerId: warm.containerId, cpuBaselineNs: warm.cpuBaselineNs, memoryMb: warm.memoryMb } });
      } else if (warmKey !== null && this.warm.awaitable(warmKey) > (promised.get(warmKey) ?? 0)) {
        promised.set(warmKey, (promised.get(warmKey) ?? 0) + 1);
        waiting.push(queued);
      } else this.dispatch(job, task);
    }
    this.queue.unshift(...waiting);
    if (!this.draining && !this.closing && this.pool !== null) {
      // One free slot is kept out of the budget: near saturation, a warm container being made
      // would only compete with the next job's own container for the engine.
      this.warm.refill(this.pool, this.config.concurrency - this.running.size - this.queue.length - 1, this.anyJobRunning());
    }
  }

  private dispatch(job: Job, task: JobTask): void {
    job.phase = "running";
    job.dispatchedAt = performance.now();
    const pool = this.pool!;
    const settled = pool
      .run(task)
      .then(
        (outcome: WorkerOutcome) => {
          if (outcome.kind === "reported") {
            this.log.debug({ job: job.id, phases: outcome.timings }, "job cleaned up");
            this.observed.emit("jobCleanedUp", { jobId: job.id, cleanupMs: outcome.timings?.cleanup ?? null });
            return;
          }
          this.closeWith(job, outcome);
        },
        (err: Error) => {
          this.log.error({ job: job.id, err: err.message }, "worker failed while running the job");
          this.close(job, composeOutcome(
            { jobId: job.id, previousState: job.previousState, killed: job.killed, oomEvent: job.oomEvent },
            { kind: "crash", text: "The agent failed while running this job. Please retry.", timeout: false, oomKilled: false },
          ));
          // The worker could not clean up: what it left is removed from here.
          void this.cleanupAfter(job, [...job.containers], true);
        },
      )
      .finally(() => {
        // Only now: the worker may call the main thread until its very last cleanup step,
        // and the job's containers (and their published ports) are gone.
        this.ports.release(job.ports);
        this.running.delete(job.id);
        this.pump();
      });
    this.running.set(job.id, { job, settled });
  }

  /** Whether a job is between its worker taking it and its result (cleanups do not count). */
  private anyJobRunning(): boolean {
    for (const r of this.running.values()) if (r.job.phase === "running") return true;
    return false;
  }

  /** Open jobs, and closed ones whose worker is still removing what they used. */
  private unfinishedJobs(): Job[] {
    return [...new Set([...this.jobs.values(), ...[...this.running.values()].map((r) => r.job)])];
  }

  /** A job by id, also once it is closed while its worker still cleans up after it. */
  private jobOf(jobId: string): Job | undefined {
    return this.jobs.get(jobId) ?? this.running.get(jobId)?.job;
  }

  private closeWith(job: Job, outcome: GradingOutcome): void {
    const facts = { jobId: job.id, previousState: job.previousState, killed: job.killed, oomEvent: job.oomEvent };
    // a warm container that gave a result: its environment's warm containers work
    if (job.ranWarm && job.warmEnv !== null && (outcome.kind === "result" || outcome.kind === "encoded-result")) this.warm.noteServed(job.warmEnv);
    this.close(job, composeOutcome(facts, outcome), outcome.timings);
  }

  /** The calls workers make, over each pool thread's channel (see MAIN_API_PORT). */
  private mainApi(): MainApi {
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
        if (job === undefined || this.debugHostValue === null) return null;
        const got = this.ports.take(count);
        if (got !== null) for (const p of got) job.ports.add(p);
        return got;
      },
      releasePorts: (jobId, ports) => {
        const job = this.jobOf(jobId);
        for (const p of ports) job?.ports.delete(p);
        this.ports.release(ports);
      },
      sshDebug: (jobId, port, user, password) => {
        const job = this.jobs.get(jobId);
        if (job === undefined || job.phase !== "running" || job.sshSent || this.debugHostValue === null) return;
        job.sshSent = true;
        this.send({ type: "AgentJobSSHDebug", job_id: jobId, host: this.debugHostValue, port, user, password });
      },
    };
  }

  /** Removes this agent's containers that no running job owns (see docker/reconcile.ts). */
  async reconcile(graceSeconds = 60): Promise<string[]> {
    let listed;
    try {
      listed = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${this.id}`] } });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "failed to list containers for reconciliation");
      return [];
    }
    const owned = new Set<string>();
    for (const job of this.jobs.values()) for (const id of job.containers) owned.add(id);
    for (const id of this.warm.owned) owned.add(id);
    this.warm.removeStale();
    const orphans = findOrphans(listed, owned, Date.now() / 1000, graceSeconds);
    for (const id of orphans) {
      this.log.warn({ container: id }, "removing a container no running job owns");
      await removeQuietly(this.docker, id, this.log);
    }
    return orphans;
  }

  private onOom(containerId: string): void {
    const jobId = this.containerOwner.get(containerId);
    if (jobId === undefined) return;
    const job = this.jobs.get(jobId);
    this.oomContainers.add(containerId);
    this.log.info({ job: jobId, container: containerId }, "container ran out of memory: killing it");
    if (job !== undefined && job.containers.has(containerId) && this.isGrading(containerId, job)) job.oomEvent = true;
    void killQuietly(this.docker, containerId, this.log);
  }

  /** The first container a job records is its grading container. */
  private isGrading(containerId: string, job: Job): boolean {
    return job.containers.values().next().value === containerId;
  }

  /** The single closing path of a job. */
  private close(job: Job, done: AgentJobDone | EncodedJobDone, timings: PhaseTimings = {}): void {
    if (!job.close()) return;
    if (job.warmEnv !== null) this.warm.noteJobEnded(job.warmEnv);
    this.jobs.delete(job.id);
    this.recent.add(job.id);
    // A running job's ports are released when its worker is done with its containers.
    if (!this.running.has(job.id)) this.ports.release(job.ports);
    const totalMs = Math.round(performance.now() - job.startedAt);
    const result = done.type === "EncodedJobDone" ? done.result : done.result[0];
    this.log.info({ job: job.id, result, grade: done.grade, ms: totalMs, phases: timings }, "job done");
    this.send(done);
    this.observed.emit("jobClosed", {
      jobId: job.id,
      result,
      totalMs,
      queueMs: job.dispatchedAt === null ? null : Math.round(job.dispatchedAt - job.startedAt),
      timings,
    });
    this.pump();
  }

  /** Removes what a job left when its worker did not (it died, or the job never reached it). */
  private async cleanupAfter(job: Job, containers: string[], dispatched: boolean): Promise<void> {
    await Promise.all(containers.map((id) => removeQuietly(this.docker, id, this.log)));
    for (const id of containers) this.containerOwner.delete(id);
    if (dispatched) {
      try {
        await removeJobDirectory(job.jobDir);
      } catch (err) {
        this.log.error({ job: job.id, err: (err as Error).message }, "failed to remove job directory");
      }
    }
  }

  /**
   * Ends every job without a word to the backend (used before a new identity says hello:
   * the backend already failed them) and waits until their containers and directories are gone.
   */
  async abandonAll(reason: string): Promise<void> {
    const jobs = this.unfinishedJobs();
    if (jobs.length === 0) return;
    this.log.warn({ jobs: jobs.length, reason }, "abandoning running jobs");
    const send = this.send;
    this.send = () => {};
    try {
      await this.endAll(jobs, reason);
    } finally {
      this.send = send;
    }
  }

  /** Reports every job as crashed (the protocol cannot hand a job back), removes everything, stops the pool. */
  shutdown(reason = "The agent is shutting down. Please retry."): Promise<void> {
    // Every caller waits for the same, single shutdown.
    this.shuttingDown ??= (async () => {
      this.closing = true;
      const jobs = this.unfinishedJobs();
      this.log.info({ jobs: jobs.length }, "shutting down");
      await this.endAll(jobs, reason);
      await this.warm.stop();
      this.events?.stop();
      if (this.reconcileTimer) clearInterval(this.reconcileTimer);
      await this.pool?.close({ force: true }).catch(() => {});
    })();
    return this.shuttingDown;
  }

  /**
   * Closes the given jobs as `crash` with `reason`, kills their containers, and waits (bounded)
   * for their workers to finish cleaning up; what a worker did not remove in time is removed here.
   */
  private async endAll(jobs: Job[], reason: string, timeoutMs = 8000): Promise<void> {
    this.draining = true;
    try {
      const waits: Promise<void>[] = [];
      for (const job of jobs) {
        const run = this.running.get(job.id);
        job.killed = true; // containers created from now on are refused
        if (job.phase === "queued") {
          const i = this.queue.findIndex((q) => q.job === job);
          if (i >= 0) this.queue.splice(i, 1);
        }
        this.close(job, jobDone(job.id, "crash", reason, job.previousState));
        if (run === undefined) continue;
        for (const id of job.containers) void killQuietly(this.docker, id, this.log);
        waits.push(
          Promise.race([run.settled, new Promise<void>((r) => setTimeout(r, timeoutMs))]).then(() =>
            this.running.has(job.id) ? this.cleanupAfter(job, [...job.containers], true) : undefined,
          ),
        );
      }
      await Promise.all(waits);
    } finally {
      this.draining = false;
      this.pump(); // nothing pumped while draining: the warm pool may be short (a stop pumps nothing)
    }
  }
}

function jobDirName(jobId: string): string {
  const safe = jobId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40);
  return `${JOB_DIR_PREFIX}${safe}-${randomBytes(4).toString("hex")}`;
}
