/**
 * The agent's Prometheus metrics (prom-client, in a registry of its own). Values owned elsewhere
 * (running jobs, reconnects, event-stream restarts) are read at scrape time; jobs are counted
 * from the agent's `jobClosed` events; Docker errors and Ping delays are pushed by hooks.
 */
import type { EventEmitter } from "node:events";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { AgentEvents, JobClosedInfo } from "../jobs/observed.js";
import { TASK_FOLDER_MODES, type TaskFolderMode } from "../jobs/layer-place.js";
import type { DockerErrorReport } from "./docker-errors.js";

export const METRIC_PREFIX = "inginious_agent_";

/** The outcomes INGInious knows; each is exported (at 0) from the start so that rates work at once. */
export const OUTCOMES = ["success", "failed", "crash", "timeout", "overflow", "killed", "error"] as const;
export const PHASES = ["prepare", "create", "start", "run", "collect", "cleanup"] as const;

/** Seconds: from a few milliseconds (phases of a quick job) to the 30-minute SSH debug limit. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
/** Seconds: the main thread answers a Ping in microseconds when it is healthy. */
const PING_BUCKETS = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1];

/** What the metrics read; the agent and the link provide it (an interface, so tests can fake it). */
export interface MetricsSources {
  observed: EventEmitter<AgentEvents>;
  /** Job slots (`--concurrency`). */
  concurrency: number;
  /** Jobs handed to a worker whose slot is not free yet. */
  runningJobs(): number;
  /** Jobs waiting for a slot. */
  queuedJobs(): number;
  /** Warm grading containers ready for a job. */
  warmContainers(): number;
  /** Whether jobs' /task is layered over the task folder rather than copied (src/jobs/task-layer.ts). */
  layeredTasks(): boolean;
  /** Which way (src/jobs/layer-place.ts TASK_FOLDER_MODES): where the writable layers are, with metacopy or not, or copied. */
  taskFolderMode(): TaskFolderMode;
  /** MB jobs, student and warm containers may reserve together (host memory less --memory-reserve). */
  memoryUsableMb: number;
  /** MB reserved right now by the memory limits of jobs, student and warm containers. */
  memoryReservedMb(): number;
  /** Queued jobs that have a free slot but wait for memory. */
  jobsWaitingForMemory(): number;
  /** Student containers waiting for memory. */
  studentsWaitingForMemory(): number;
  backendReconnects(): number;
  /** performance.now() of the backend's last message, or null when none came yet. */
  lastBackendMessageAt(): number | null;
  dockerEventRestarts(): number;
  dockerEventsAlive(): boolean;
  /** Cached engine ping (see health.ts); never one per scrape. */
  dockerUp(): Promise<boolean>;
  /** Labels of the info metric. */
  info: { version: string; agent: string; friendly_name: string };
}

export interface AgentMetrics {
  registry: Registry;
  /** Counts a failed engine call (a plain function: handed to the engine client as it is). */
  dockerError: (report: DockerErrorReport) => void;
  /** Seconds between reading a Ping and queueing its Pong. */
  pingAnswered: (seconds: number) => void;
  /** Stops listening to the agent. */
  close(): void;
}

/** A counter mirroring a cumulative count kept elsewhere. */
function mirrorCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let seen = 0;
  new Counter({
    name, help, registers: [registry],
    collect() {
      const now = read();
      if (now > seen) this.inc(now - seen);
      seen = Math.max(seen, now);
    },
  });
}

export function createAgentMetrics(src: MetricsSources): AgentMetrics {
  const registry = new Registry();
  // process_* (CPU, memory, file descriptors) and nodejs_* metrics, among them the event-loop
  // delay from a perf_hooks histogram: nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds,
  // measured since the previous scrape.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });

  new Gauge({
    name: `${METRIC_PREFIX}info`, help: "Always 1; the labels name this agent (agent = the label its containers carry).",
    labelNames: ["version", "agent", "friendly_name"], registers: [registry],
  }).set(src.info, 1);

  const stopJobMetrics = jobMetrics(registry, src);
  capacityMetrics(registry, src);
  const dockerErrors = dockerMetrics(registry, src);
  const ping = backendMetrics(registry, src);

  return {
    registry,
    dockerError: (r) => dockerErrors.inc({ call: r.call, status: r.status }),
    pingAnswered: (seconds) => ping.observe(seconds),
    close: stopJobMetrics,
  };
}

/** Jobs ended, their durations and phases; returns what stops listening to the agent. */
function jobMetrics(registry: Registry, src: MetricsSources): () => void {
  const jobs = new Counter({
    name: `${METRIC_PREFIX}jobs_total`, help: "Jobs ended, by result as sent to the backend (refused jobs count as crash).",
    labelNames: ["result"], registers: [registry],
  });
  for (const result of OUTCOMES) jobs.inc({ result }, 0);
  const duration = new Histogram({
    name: `${METRIC_PREFIX}job_duration_seconds`, help: "Time from a job's arrival to its result, by result.",
    labelNames: ["result"], buckets: DURATION_BUCKETS, registers: [registry],
  });
  const queueWait = new Histogram({
    name: `${METRIC_PREFIX}job_queue_wait_seconds`, help: "Time a job waited for a free slot before a worker took it.",
    buckets: DURATION_BUCKETS, registers: [registry],
  });
  const phases = new Histogram({
    name: `${METRIC_PREFIX}job_phase_seconds`,
    help: "Time spent in each phase of a job in its worker: prepare (job directory), create (containers), start, run (until the grader ended), collect (result and archive), cleanup.",
    labelNames: ["phase"], buckets: DURATION_BUCKETS, registers: [registry],
  });
  const onClosed = (info: JobClosedInfo): void => {
    jobs.inc({ result: info.result });
    duration.observe({ result: info.result }, info.totalMs / 1000);
    if (info.queueMs !== null) queueWait.observe(info.queueMs / 1000);
    for (const phase of PHASES) {
      const ms = info.timings[phase];
      if (typeof ms === "number") phases.observe({ phase }, ms / 1000);
    }
  };
  src.observed.on("jobClosed", onClosed);
  // Results go out before the cleanup: its time comes later, on its own.
  const onCleanedUp = (info: { cleanupMs: number | null }): void => {
    if (info.cleanupMs !== null) phases.observe({ phase: "cleanup" }, info.cleanupMs / 1000);
  };
  src.observed.on("jobCleanedUp", onCleanedUp);

  return () => {
    src.observed.off("jobClosed", onClosed);
    src.observed.off("jobCleanedUp", onCleanedUp);
  };
}

/** Slots, queue, warm containers and memory: what the agent can take on now. */
function capacityMetrics(registry: Registry, src: MetricsSources): void {
  new Gauge({
    name: `${METRIC_PREFIX}job_slots`, help: "Jobs this agent runs at once (--concurrency, announced as available_job_slots).",
    registers: [registry], collect() { this.set(src.concurrency); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}jobs_running`, help: "Jobs handed to a worker whose slot is not free yet (cleanup included).",
    registers: [registry], collect() { this.set(src.runningJobs()); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}jobs_queued`, help: "Jobs accepted and waiting for a free slot.",
    registers: [registry], collect() { this.set(src.queuedJobs()); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}warm_containers`, help: "Warm grading containers started ahead and waiting for a job (see --warm).",
    registers: [registry], collect() { this.set(src.warmContainers()); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}task_folders_layered`, help: "1 when a job's /task is a writable overlay layer over its task folder, 0 when task folders are copied (--copy-task-folders, or the start-up check failed).",
    registers: [registry], collect() { this.set(src.layeredTasks() ? 1 : 0); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}task_folders_mode`, labelNames: ["mode"],
    help: "1 for the way jobs get /task, 0 for the others: layers-dir(-metacopy) (writable layers on /dev/shm or --task-layers-dir, with metacopy or not), job-dir(-metacopy) (in job directories), copy.",
    registers: [registry], collect() { for (const m of TASK_FOLDER_MODES) this.set({ mode: m }, src.taskFolderMode() === m ? 1 : 0); },
  });
  const MB = 1024 * 1024;
  new Gauge({
    name: `${METRIC_PREFIX}memory_usable_bytes`, help: "Memory the memory limits of jobs, student and warm containers may reserve together: host memory less --memory-reserve.",
    registers: [registry], collect() { this.set(src.memoryUsableMb * MB); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}memory_reserved_bytes`, help: "Memory reserved right now by the memory limits of running jobs, their student containers and warm containers.",
    registers: [registry], collect() { this.set(src.memoryReservedMb() * MB); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}jobs_waiting_for_memory`, help: "Queued jobs that have a free slot but wait until their memory limit fits in the memory not reserved.",
    registers: [registry], collect() { this.set(src.jobsWaitingForMemory()); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}student_containers_waiting_for_memory`, help: "Student containers asked for by running jobs and waiting until their memory limit fits.",
    registers: [registry], collect() { this.set(src.studentsWaitingForMemory()); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}free_slots`, help: "Job slots not taken by a running job.",
    registers: [registry], collect() { this.set(Math.max(0, src.concurrency - src.runningJobs())); },
  });
}

/** The engine: failed calls, whether it answers, its event stream; returns the failed-call counter. */
function dockerMetrics(registry: Registry, src: MetricsSources): Counter {
  const dockerErrors = new Counter({
    name: `${METRIC_PREFIX}docker_errors_total`,
    help: "Failed Docker API calls, by call (ids replaced by {id}) and status (HTTP status or socket error code). Includes answers the agent treats as fine, such as 404 when removing a container already gone.",
    labelNames: ["call", "status"], registers: [registry],
  });
  new Gauge({
    name: `${METRIC_PREFIX}docker_up`, help: "1 when the engine answered its last ping (pinged at most every 5 s, on scrape or health check).",
    registers: [registry], async collect() { this.set((await src.dockerUp()) ? 1 : 0); },
  });
  new Gauge({
    name: `${METRIC_PREFIX}docker_event_stream_up`, help: "1 while the engine's event stream (oom and die events of this agent's containers) is open.",
    registers: [registry], collect() { this.set(src.dockerEventsAlive() ? 1 : 0); },
  });
  mirrorCounter(registry, `${METRIC_PREFIX}docker_event_stream_restarts_total`,
    "Times the engine's event stream ended and was opened again.", () => src.dockerEventRestarts());
  return dockerErrors;
}

/** The backend link: reconnections, silence, and the Ping to Pong delay; returns that histogram. */
function backendMetrics(registry: Registry, src: MetricsSources): Histogram {
  const startedAt = performance.now();
  mirrorCounter(registry, `${METRIC_PREFIX}backend_reconnects_total`,
    "Times the link to the backend was opened again (with a new identity) after 10 s of silence.", () => src.backendReconnects());
  new Gauge({
    name: `${METRIC_PREFIX}backend_last_message_age_seconds`,
    help: "Seconds since the last message from the backend (since the agent started, when none came yet).",
    registers: [registry],
    collect() {
      const at = src.lastBackendMessageAt() ?? startedAt;
      this.set((performance.now() - at) / 1000);
    },
  });
  const ping = new Histogram({
    name: `${METRIC_PREFIX}ping_pong_delay_seconds`,
    help: "Time from reading a Ping off the backend socket to queueing its Pong on that socket: the agent's own processing delay. It does not include time spent in the network, in ZeroMQ's queues or waiting for the event loop before the Ping was read (see nodejs_eventloop_lag_*).",
    buckets: PING_BUCKETS, registers: [registry],
  });
  return ping;
}
