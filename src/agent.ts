/**
 * The grading agent's main-thread core, put together: it starts (asks Docker for its cgroup
 * version and runtimes, discovers the grading images, chooses the SSH debug host, removes what an
 * earlier run left, follows the engine's events, starts the worker pool), links the parts that do
 * the work — admission and dispatch (jobs/admission.ts, jobs/dispatch.ts), the registry of jobs
 * and their containers (jobs/registry.ts), the warm containers — and shuts down. It knows nothing
 * of ZeroMQ: the link sees it as a LinkedCore and receives its messages through its Outbox.
 */
import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import path from "node:path";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/esm/node-adapter.mjs";
import type Docker from "dockerode";
import { Piscina } from "piscina";
import type { AgentConfig, RuntimeSpec } from "./config.js";
import { detectDebugHost } from "./debug-host.js";
import { connectDocker, removeQuietly } from "./docker/engine.js";
import { removeOrphanVolumes } from "./docker/orphan-volumes.js";
import { DockerEventWatcher } from "./docker/events.js";
import { LABEL_AGENT, agentId, containerLabels } from "./docker/labels.js";
import type { TaskFolders } from "./docker/layer-check.js";
import { COPY_TASK_FOLDERS, removeAgentLayersDir, setUpTaskFolders } from "./docker/task-folders.js";
import { sweepAtShutdown } from "./docker/shutdown-sweep.js";
import { removeLeftoverContainers, removeLeftoverJobDirectories, removeLeftoverVolumes } from "./docker/reaper.js";
import { findOrphans } from "./docker/reconcile.js";
import { discoverEnvironments, type ImageSummary } from "./environments/images.js";
import { detectRuntimes } from "./environments/runtimes.js";
import type { AdmissionSnapshot } from "./jobs/admission.js";
import { Dispatcher } from "./jobs/dispatch.js";
import { mainApiPort, type PoolSettings } from "./jobs/job-task.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./protocol/container-stream.js";
import { DEFAULT_POOL_IDLE_SECONDS, DEFAULT_STUDENT_CONTAINERS, POOL_THREAD_OLD_HEAP_MB, POOL_THREAD_YOUNG_HEAP_MB } from "./config.js";
import type { AgentEvents } from "./jobs/observed.js";
import { JobRegistry } from "./jobs/registry.js";
import { chosenLayersDir } from "./jobs/layer-place.js";
import { WarmContainers } from "./jobs/warm-containers.js";
import { MemoryBudget, hostMemoryMb, memoryAdvice, usableMemoryMb } from "./limits/memory-budget.js";
import { PortPool } from "./limits/port-pool.js";
import { Outbox, type LinkedCore } from "./jobs/outbox.js";
import type { Logger } from "./log.js";
import type { AgentHello, BackendKillJob, BackendNewJob, BadFrameError, Environments } from "./protocol/messages.js";
import { dockerAddress, dockerUnreachableMessage, gradingImageAdvice } from "./ops/self-checks.js";
import { openFileLimits } from "./system.js";

export class AgentStartError extends Error {}

export class GradingAgent implements LinkedCore {
  readonly id: string;
  /** Where messages for the backend go; the link attaches to it on each connection. */
  readonly outbox = new Outbox();
  /** Observers' view of the agent: one event per closed job. */
  readonly observed = new EventEmitter<AgentEvents>();
  private environments: Environments = {};
  /** How jobs get /task: an overlay volume over the task folder, where, or a copy (decided at start: see docker/layer-check.ts). */
  taskFolders: TaskFolders = COPY_TASK_FOLDERS;
  private readonly runtimes = new Map<string, RuntimeSpec>();
  private cgroupVersion: 1 | 2 = 1;
  private pool: Piscina | null = null;
  private events: DockerEventWatcher | null = null;
  private readonly warm: WarmContainers;
  private readonly registry: JobRegistry;
  private readonly dispatcher: Dispatcher;
  private readonly nofile: { soft: number; hard: number };
  /** What jobs, student and warm containers have reserved of the memory they may use. */
  readonly memory: MemoryBudget;
  private readonly tmpdir: string;
  /** Where jobs' layer folders are made when the check allows it (--task-layers-dir, or /dev/shm). */
  private readonly layersPlace: string | null;
  private readonly tasks: string;
  private shuttingDown: Promise<void> | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    readonly docker: Docker,
  ) {
    this.tmpdir = path.resolve(config.tmpdir);
    this.layersPlace = chosenLayersDir(config.taskLayersDir);
    this.tasks = path.resolve(config.tasks);
    this.id = agentId(this.tmpdir);
    const limits = openFileLimits();
    this.nofile = {
      soft: Math.max(64, Math.floor(limits.soft / config.concurrency)),
      hard: Math.max(64, Math.floor(limits.hard / config.concurrency)),
    };
    let hostMb: number;
    try {
      hostMb = hostMemoryMb();
    } catch (err) {
      throw new AgentStartError((err as Error).message);
    }
    this.memory = new MemoryBudget(usableMemoryMb(hostMb, config.memoryReserveMb));
    this.warm = new WarmContainers(config.warm, this.tmpdir, () => ({
      memoryMb: Math.min(256, this.memory.usableMb),
      labels: containerLabels(this.id, "", "warm"),
    }), this.docker, log, this.memory, () => this.dispatcher.pump());
    const ports = new PortPool(config.debugPorts);
    this.registry = new JobRegistry(this.docker, log, ports, this.memory, this.warm, this.outbox, this.observed, {
      jobClosed: (job, wasQueued) => this.dispatcher.jobClosed(job, wasQueued),
      slotFreed: () => this.dispatcher.pump(),
      askMemory: (job, holder, memoryMb) => this.dispatcher.askMemory(job, holder, memoryMb),
      memoryReleased: () => this.dispatcher.pump(),
    });
    this.registry.agentId = this.id;
    this.dispatcher = new Dispatcher(config.concurrency, this.tmpdir, log, this.registry, ports, this.memory, this.warm, this.outbox);
    const advice = memoryAdvice(config.concurrency, this.memory.usableMb);
    if (advice !== null) log.warn({ check: "memory", hostMb, usableMb: this.memory.usableMb }, advice);
    else log.info({ check: "memory", hostMb, usableMb: this.memory.usableMb }, "memory jobs may reserve together");
  }

  /** Connects to Docker, finds environments, removes what an earlier run left, starts the pool. */
  static async start(config: AgentConfig, log: Logger): Promise<GradingAgent> {
    const agent = new GradingAgent(config, log, connectDocker());
    await agent.init();
    return agent;
  }

  private async init(): Promise<void> {
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
      this.log.info({ runtime: rt.runtime, envtype: rt.envtype, root: rt.runAsRoot }, "using runtime");
    }
    await this.discover();
    this.registry.debugHost = this.chooseDebugHost();

    await removeLeftoverContainers(this.docker, this.id, this.log);
    await removeLeftoverVolumes(this.docker, this.id, this.log);
    await removeLeftoverJobDirectories(this.tmpdir, this.id, this.log);
    await this.chooseTaskFolders();
    // A heavy task's warm containers hold its layer; one not taken is removed by the agent, which
    // must then be able to remove the overlay's work directory (root's, mode 000) itself.
    this.warm.keyByTask(this.layeredTasks && process.getuid?.() === 0);
    this.followEngine();
    this.startPool();
    this.log.info({ threads: this.config.poolThreads, concurrency: this.config.concurrency, agent: this.id }, "agent ready");
  }

  /** Layered task folders when the engine shows it can make them here, unless --copy-task-folders. */
  private async chooseTaskFolders(): Promise<void> {
    this.taskFolders = await setUpTaskFolders(this.docker, {
      tmpdir: this.tmpdir, coursesDir: this.tasks, layersPlace: this.layersPlace, image: this.anyImage(), agent: this.id, copy: this.config.copyTaskFolders === true,
    }, this.log);
    this.registry.taskLayersDir = this.taskFolders.layersDir;
    this.warm.taskLayersDir = this.taskFolders.layersDir;
  }

  /** A grading image of this host (the start-up check probes with it, reapers remove root's files with it), or null. */
  private anyImage(): string | null {
    return Object.values(this.environments).flatMap((byName) => Object.values(byName))[0]?.id ?? null;
  }

  /** Whether jobs get /task as an overlay volume over the task folder (metrics). */
  get layeredTasks(): boolean {
    return this.taskFolders.mode !== "copy";
  }

  private chooseDebugHost(): string | null {
    if (this.config.debugHost !== null) return this.config.debugHost;
    const host = detectDebugHost();
    if (host === null) this.log.warn("no address found for SSH debug: SSH debug is off (set --debug-host)");
    else this.log.info({ host }, "SSH debug host chosen from the default route; set --debug-host if this host is behind NAT");
    return host;
  }

  /** Follows the engine's events, and reconciles its containers with the jobs now and then. */
  private followEngine(): void {
    this.events = new DockerEventWatcher(this.docker, this.id, this.log);
    this.events.on("oom", (id) => this.registry.onOom(id));
    this.events.on("die", (id) => this.warm.onDie(id));
    // After a break the engine may have restarted: containers of ended jobs whose removal failed go now.
    this.events.on("resumed", () => void this.reconcile(5));
    this.events.start();
    this.reconcileTimer = setInterval(() => void this.reconcile(), 30_000);
    this.reconcileTimer.unref();
  }

  /**
   * Pool threads start when work comes and end after poolIdleSeconds without any: an idle agent
   * holds no thread (each costs 12-25 MB). What must outlive a thread (jobs, their containers,
   * ports, memory, warm containers) is kept on the main thread.
   */
  private startPool(): void {
    const threads = this.config.poolThreads;
    const pool = new Piscina({
      filename: new URL("../workers/job.js", import.meta.url).href,
      workerData: this.poolSettings(),
      minThreads: 0,
      maxThreads: threads,
      concurrentTasksPerWorker: Math.max(1, Math.ceil((this.config.concurrency * 2) / threads)),
      atomics: "disabled",
      idleTimeout: (this.config.poolIdleSeconds ?? DEFAULT_POOL_IDLE_SECONDS) * 1000,
      resourceLimits: { maxOldGenerationSizeMb: POOL_THREAD_OLD_HEAP_MB, maxYoungGenerationSizeMb: POOL_THREAD_YOUNG_HEAP_MB },
    });
    this.pool = pool;
    let live = 0;
    pool.on("workerCreate", () => this.log.info({ threads: ++live }, "pool thread started"));
    pool.on("workerDestroy", () => this.log.info({ threads: --live }, "pool thread ended"));
    // each pool thread sends, once, its end of the channel its jobs call MainApi over
    pool.on("message", (message: unknown) => {
      const port = mainApiPort(message);
      if (port === null) return;
      Comlink.expose(this.registry.mainApi(), nodeEndpoint(port as never));
      port.unref(); // the pool keeps the agent alive, not this channel
    });
    this.dispatcher.usePool(pool);
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
    return this.registry.openJobs;
  }

  get dockerEventsAlive(): boolean {
    return this.events?.alive ?? false;
  }

  /** Jobs handed to a worker whose slot is not free yet (metrics). */
  get dispatchedJobs(): number {
    return this.registry.slotsInUse;
  }

  /** Jobs waiting for a slot (metrics). */
  get queuedJobs(): number {
    return this.dispatcher.queuedJobs;
  }

  /** Queued jobs that have a free slot but wait for memory (metrics). */
  get jobsWaitingForMemory(): number {
    return this.dispatcher.jobsWaitingForMemory;
  }

  /** Student containers waiting for memory (metrics). */
  get studentsWaitingForMemory(): number {
    return this.dispatcher.studentsWaitingForMemory;
  }

  /** Pool threads alive now (they start with work and may stop when idle). */
  get poolThreads(): number {
    return this.pool?.threads.length ?? 0;
  }

  /** Warm containers ready for a job (metrics). */
  get warmContainers(): number {
    return this.warm.ready;
  }

  /** Times the engine's event stream was opened again (metrics). */
  get dockerEventRestarts(): number {
    return this.events?.restarts ?? 0;
  }

  // ---- backend messages ------------------------------------------------------------------

  onNewJob(msg: BackendNewJob): void {
    this.dispatcher.onNewJob(msg, this.admissionSnapshot());
  }

  onKill(msg: BackendKillJob): void {
    this.registry.onKill(msg);
  }

  /** A frame that could not be used: a job frame whose id could be read still gets its answer. */
  onBadFrame(err: BadFrameError): void {
    this.registry.onBadFrame(err);
  }

  private admissionSnapshot(): AdmissionSnapshot {
    return {
      environments: this.environments,
      runtimes: this.runtimes,
      usableMemoryMb: this.memory.usableMb,
      debugHost: this.registry.debugHost,
      tasksRoot: this.tasks,
      agentId: this.id,
      diskLimit: this.config.diskLimit !== false,
    };
  }

  /** What every pool thread gets once, when it starts (its workerData): fixed for the agent's life. */
  private poolSettings(): PoolSettings {
    return {
      jobDirMarker: this.id,
      nofile: this.nofile,
      pidsLimit: this.config.pidsLimit,
      cgroupVersion: this.cgroupVersion,
      maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
      sshAllowed: this.config.ssh,
      studentContainers: this.config.studentContainers ?? DEFAULT_STUDENT_CONTAINERS,
      layeredTasks: this.layeredTasks,
      taskLayersDir: this.taskFolders.layersDir,
      layerMetacopy: this.taskFolders.metacopy,
      logLevel: this.log.level,
      logDestination: this.config.logDestination ?? 1,
    };
  }

  // ---- the engine's containers and the agent's end ----------------------------------------

  /** Removes this agent's containers that no running job owns (see docker/reconcile.ts). */
  async reconcile(graceSeconds = 60): Promise<string[]> {
    let listed;
    try {
      listed = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${this.id}`] } });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "failed to list containers for reconciliation");
      return [];
    }
    const owned = this.registry.jobContainers();
    for (const id of this.warm.owned) owned.add(id);
    this.warm.removeStale();
    const orphans = findOrphans(listed, owned, Date.now() / 1000, graceSeconds);
    for (const id of orphans) {
      this.log.warn({ container: id }, "removing a container no running job owns");
      await removeQuietly(this.docker, id, this.log);
    }
    await removeOrphanVolumes(this.docker, this.id, () => new Set([...this.registry.jobVolumes(), ...this.warm.ownedVolumes]), this.log);
    return orphans;
  }

  /**
   * Ends every job without a word to the backend (used before a new identity says hello:
   * the backend already failed them) and waits until their containers and directories are gone.
   */
  async abandonAll(reason: string): Promise<void> {
    const jobs = this.registry.unfinishedJobs();
    if (jobs.length === 0) return;
    this.log.warn({ jobs: jobs.length, reason }, "abandoning running jobs");
    await this.outbox.withoutSending(() => this.dispatcher.drain(() => this.registry.endAll(jobs, reason)));
  }

  /** Reports every job as crashed (the protocol cannot hand a job back), removes everything, stops the pool. */
  shutdown(reason = "The agent is shutting down. Please retry."): Promise<void> {
    // Every caller waits for the same, single shutdown.
    this.shuttingDown ??= (async () => {
      this.dispatcher.stop();
      const jobs = this.registry.unfinishedJobs();
      this.log.info({ jobs: jobs.length }, "shutting down");
      await this.dispatcher.drain(() => this.registry.endAll(jobs, reason));
      await this.warm.stop();
      this.events?.stop();
      if (this.reconcileTimer) clearInterval(this.reconcileTimer);
      await this.pool?.close({ force: true }).catch(() => {});
      const layers = this.taskFolders.layersDir;
      await sweepAtShutdown(this.docker, this.id, this.tmpdir, layers === null ? null : { dir: layers, image: this.anyImage() }, this.log);
      removeAgentLayersDir(this.taskFolders.layersDir);
    })();
    return this.shuttingDown;
  }
}
