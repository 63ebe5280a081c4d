/**
 * What the main thread hands a worker for one job, what the worker may ask of the
 * main thread while it runs (over comlink), and what it returns.
 */
import { MessagePort } from "node:worker_threads";
import type { ContainerRole } from "../docker/labels.js";
import type { JobResultKind } from "../protocol/messages.js";
import type { Packed } from "../protocol/msgpack.js";
import type { FolderIdentity } from "./task-identity.js";

export interface StudentEnvironment {
  image: string;
  runtime: string;
}

/**
 * Settings fixed for the agent's whole life. They reach each pool thread once, as its
 * piscina `workerData`, not inside every job's task; the worker adds them to each job it runs
 * (see workers/thread.ts). Environments and runtimes are re-read before each hello: they stay
 * per job.
 */
export interface PoolSettings {
  /** Marker file content written in each job directory, naming the agent that made it. */
  jobDirMarker: string;
  nofile: { soft: number; hard: number };
  pidsLimit: number;
  cgroupVersion: 1 | 2;
  /** Cap on one message from a grading container. */
  maxMessageBytes: number;
  /** Whether this agent runs SSH student containers (--ssh). */
  sshAllowed: boolean;
  /** Student containers one job may run at once (--student-containers); more requests wait. */
  studentContainers: number;
  /** Whether a job's /task is an overlay volume over the task folder (src/jobs/task-layer.ts) rather than a copy. */
  layeredTasks: boolean;
  /** The agent's folder where each layered job's layer folder is made (src/jobs/layer-place.ts); null: in the job directory. */
  taskLayersDir: string | null;
  /** Whether layered volumes are mounted with metacopy (src/jobs/task-layer.ts METACOPY_OPTIONS). */
  layerMetacopy: boolean;
  /** The main thread's pino level and log file descriptor, for the threads' own logger. */
  logLevel: string;
  logDestination: number;
}

/** What the main thread sends a pool thread for one job. */
export interface JobSpec {
  jobId: string;
  /** Absolute path of the job's private directory; the worker creates and fills it. */
  jobDir: string;
  /** Absolute task folder to copy, or null for a task-less job. */
  taskDir: string | null;
  /** Absolute course folder (for `$common`), or null for a task-less job. */
  courseDir: string | null;
  image: string;
  runtime: string;
  envtype: string;
  environment: string;
  time: number;
  hardTime: number;
  memoryMb: number;
  /** Megabytes the job may write (job directory + containers' writable layers), or null. */
  diskMb: number | null;
  network: boolean;
  /** internal port -> external port */
  ports: Record<number, number>;
  /** The msgpack bytes of the job's inputdata map, as the backend sent them (spliced into `start`). */
  inputdata: Uint8Array;
  debug: boolean | "ssh";
  runCmd: string | null;
  envtypes: string[];
  runAsRoot: boolean;
  labels: Record<string, string>;
  studentLabels: Record<string, string>;
  /** Environments of the same envtype, by name, for run_student. */
  studentEnvironments: Record<string, StudentEnvironment>;
  envtypeHasSsh: boolean;
  /**
   * A warm container (already started, its directory bound at jobDir) to run the job in; `layered`:
   * its /task is already the job's task layered (warm-pool.ts, heavy tasks), else the task is copied in;
   * `lower`: for a layered one, the folder its layer was made over (task-identity.ts).
   */
  warm: { containerId: string; cpuBaselineNs: number | null; memoryMb: number; layered: boolean; lower: FolderIdentity | null } | null;
}

/** One job as the worker runs it: what was sent for it, with the pool's settings. */
export type JobTask = JobSpec & PoolSettings;

/** The pool's settings as a pool thread got them in its workerData; throws when they are missing. */
export function poolSettingsOf(workerData: unknown): PoolSettings {
  const s = workerData as Partial<PoolSettings> | null | undefined;
  if (s?.jobDirMarker === undefined || s.cgroupVersion === undefined || s.nofile === undefined) {
    throw new Error("this pool thread was started without the agent's settings (piscina workerData)");
  }
  return s as PoolSettings;
}

/** What a worker needs to create and start a warm container (see jobs/warm-pool.ts). */
export type WarmSpec = Pick<JobSpec, "jobDir" | "image" | "runtime" | "memoryMb" | "labels" | "taskDir" | "courseDir"> & {
  /** How long the container must keep running after its start before it is ready (see WarmPool.settleMsFor). */
  settleMs: number;
};

/** A warm container's creation as the worker runs it, with the pool's settings. */
export type WarmTask = WarmSpec & PoolSettings;

export type WarmCreated =
  | {
    kind: "ready";
    containerId: string;
    /** CPU time (ns) used before any job; null: read from its cgroup when a job takes it. */
    cpuBaselineNs: number | null;
    /** Made for a task: the folder its layer's lower layer is (task-identity.ts); else null. */
    lower: FolderIdentity | null;
  }
  /** The container exited while settling (removed, with its directory): its image does not wait for `start`. */
  | { kind: "exited"; detail: string }
  /** Made for a task (taskDir) that cannot be layered now (task-layer.ts says why): nothing was made. */
  | { kind: "unlayered"; detail: string };

/**
 * Each pool thread opens one comlink channel to the main thread when it starts and posts its
 * end, under this key, through its parentPort (the pool re-emits it as a "message" event);
 * every job the thread runs calls MainApi over it. A channel per job cost about 5 KB of native
 * memory per job that was never given back (Node 20: transferred MessagePorts).
 */
export const MAIN_API_PORT = "inginiousAgentMainApiPort";

export function mainApiPort(message: unknown): MessagePort | null {
  if (typeof message !== "object" || message === null || !(MAIN_API_PORT in message)) return null;
  const port = (message as Record<string, unknown>)[MAIN_API_PORT];
  return port instanceof MessagePort ? port : null;
}

/** Calls a worker makes to the main thread. Every one is cheap bookkeeping. */
export interface MainApi {
  /** Records a container of the job; false means the job was killed meanwhile: stop and return. */
  containerCreated(jobId: string, containerId: string, role: ContainerRole): boolean;
  containerRemoved(jobId: string, containerId: string): void;
  /** True when the engine reported an `oom` event for this container. */
  wasOutOfMemory(containerId: string): boolean;
  allocatePorts(jobId: string, count: number): number[] | null;
  releasePorts(jobId: string, ports: number[]): void;
  /**
   * Reserves memory for a student container of the job (`holder`: its socket id) before it is
   * created. Answers true once reserved: at once when it fits, else when other containers' memory
   * is released; false when it could never fit while the job runs, when nothing but the waiting
   * jobs themselves holds memory, or when the job ended meanwhile (see jobs/dispatch.ts).
   */
  reserveMemory(jobId: string, holder: string, memoryMb: number): Promise<boolean>;
  /** Releases what reserveMemory reserved, once that student container is gone. */
  releaseMemory(jobId: string, holder: string): void;
  /**
   * What the job's worker found of its task when it layered it or could have (layered task folders
   * only): heavy and layered, or not. Heavy tasks get warm containers of their own (warm-pool.ts).
   */
  taskWeight(jobId: string, heavy: boolean): void;
  /**
   * The job's worker found that its task folder is no longer the folder its warm container's
   * layer was made over (`was`; `now`: what it is now): the task's other warm containers made
   * over another folder go.
   */
  taskFolderChanged(jobId: string, was: FolderIdentity, now: FolderIdentity): void;
  /** Forwards SSH debug access; ignored after the first one of a job. */
  sshDebug(jobId: string, port: number, user: string, password: string): void;
  /**
   * The job's outcome, reported as soon as it is known: the backend gets its result while the
   * worker still removes the containers and the directory. The job keeps its slot until then.
   */
  jobOutcome(jobId: string, outcome: GradingOutcome): void;
}

/** A container's checked result; the values the agent only forwards are its own msgpack bytes. */
export interface CheckedResult {
  result: string;
  text: string;
  grade: number | null;
  problems: Packed | Record<string, unknown>;
  tests: Packed | Record<string, unknown>;
  custom: Packed | Record<string, unknown>;
  state: string | Packed;
  archive: Uint8Array | null;
  stdout: string | Packed;
  stderr: string | Packed;
}

/** Milliseconds spent in each phase of a job in the worker. */
export interface PhaseTimings {
  prepare?: number;
  create?: number;
  start?: number;
  run?: number;
  collect?: number;
  cleanup?: number;
}

interface Observed {
  timeout: boolean;
  /** At its exit, the grading container was OOM-killed (its inspect's OOMKilled, or cgroup v2's memory.events). */
  oomKilled: boolean;
  /** Bytes written when the job went over its disk limit (and was stopped). */
  diskExceededBytes?: number;
  timings?: PhaseTimings;
}

/** How a job ended, as the worker saw it; the main thread adds kills and oom events and decides the outcome. */
export type GradingOutcome =
  | ({ kind: "result"; result: CheckedResult } & Observed)
  /** The container's result, already encoded as the job's AgentJobDone by the worker. */
  | ({ kind: "encoded-result"; result: JobResultKind; grade: number; frame: Uint8Array } & Observed)
  | ({ kind: "no-result"; text: string; stderrTail?: string } & Observed)
  /**
   * stderrTail: the last 4 KB of the grading container's stderr; detail: what exactly was wrong
   * where `text` is the Python agent's shorter text. Both for the job's log line only (never sent
   * to the backend).
   */
  | ({ kind: "crash"; text: string; stderrTail?: string; detail?: string } & Observed);

/** What a job's pool task returns: its outcome, or word that MainApi.jobOutcome already had it. */
export type WorkerOutcome = GradingOutcome | { kind: "reported"; timings?: PhaseTimings };
