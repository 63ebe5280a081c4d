/**
 * The shape of bench/results/*.json: what one run measured (levels against the floor, the
 * big-result load, memory, CPU, targets, problems). Types only, shared by the phases that fill
 * them and by the report that prints them, so that neither imports the other.
 */
import type { Options } from "./options.js";
import type { Summary } from "./stats.js";
import type { ThreadCpu } from "./threads.js";

export interface CpuFigures {
  wallS: number;
  jobs: number;
  agentMsPerJob: number | null;
  agentMainMsPerJob: number | null;
  dockerdMsPerJob: number | null;
  containerdMsPerJob: number | null;
  machineBusyMsPerJob: number | null;
  /** The bench process itself (for the floor: the cost of the same lifecycle through dockerode). */
  benchMsPerJob: number | null;
}

export interface RunFigures {
  jobs: number;
  failures: number;
  firstFailure: string | null;
  /** Sum of the chunks' makespans (first job sent to last result), s. */
  makespanS: number;
  /**
   * Steady-state throughput: in each chunk, results received while C jobs were in flight
   * (from the chunk's first job sent to its last job sent) over that time; summed over chunks.
   */
  jobsPerS: number;
  /** Successful jobs / makespan (includes ramp-up and the tail, where fewer than C jobs run). */
  makespanJobsPerS: number;
  latencyMs: Summary;
  cpu: CpuFigures;
}

export interface LevelFigures {
  c: number;
  floor: RunFigures & { phasesMs: Record<string, number | null> };
  agent: RunFigures & {
    pongMs: Summary;
    /** Containers created on the engine by others during this level (floor and agent). */
    foreignContainers?: number;
    /** Medians of the agent's own per-phase timings (its "job done" log lines). */
    phasesMs: Record<string, number | null>;
    /** Median of the agent's own view of a job (arrival to result sent), ms. */
    agentTotalMs: number | null;
  };
  /** agent jobs/s divided by floor jobs/s */
  ratio: number | null;
  /** agent p50 minus floor p50, ms */
  addedP50Ms: number | null;
}

/** A trivial job's folder (bench/folder-cost.ts), and the agent's prepare phase for the CPU figures' jobs. */
export interface JobFolderFigures {
  /** Folders made and deleted to measure it. */
  n: number;
  /** CPU to make the folder with its copy of the task, ms. */
  prepareCpuMs: number;
  /** CPU to delete it, ms. */
  removeCpuMs: number;
  prepareWallMs: number;
  /** Both, over the agent's CPU per job (all threads). */
  shareOfAgentCpu: number | null;
  /** Median of the agent's `prepare` phase (its `job done` lines; on the warm path the wait for its engine calls is in it), ms. */
  agentPrepareMs: number | null;
}

export interface EngineCallFigures {
  jobs: number;
  /** Engine calls per trivial job of the agent (pool threads and main thread), by kind. */
  agent: Record<string, number>;
  agentTotal: number;
  /** The same for the floor driver (bench/floor.ts). */
  floor: Record<string, number>;
  floorTotal: number;
}

export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
  /** Histogram windows combined (the agent also resets its histogram every 60 s when it logs). */
  segments: number;
}

export interface Target {
  id: string;
  description: string;
  value: number | null;
  op: "<=" | ">=";
  limit: number;
  unit: string;
  met: boolean | null;
}

export interface BenchResults {
  meta: {
    startedAt: string;
    durationS: number;
    quick: boolean;
    host: string;
    cores: number;
    node: string;
    dockerVersion: string;
    cgroupVersion: string;
    /** The checkout the agent was built from, and how many files differed from that commit. */
    gitCommit: string | null;
    gitChangedFiles: number | null;
    agentConcurrency: number;
    poolThreads: number;
    jobsPerLevel: number;
    agentNodeArgs: string;
    /** The agent's command line after dist/src/cli.js (the backend address and temp paths vary). */
    agentArgs: string[];
    options: Omit<Options, "out">;
    /** Containers created on the engine during the run by someone else (noise indicator). */
    foreignContainers: number;
  };
  levels: LevelFigures[];
  load: {
    c: number;
    jobs: number;
    failures: number;
    firstFailure: string | null;
    jobsPerS: number;
    resultBytes: Summary;
    archiveBytes: number | null;
    stdoutBytes: number | null;
    latencyMs: Summary;
    /** Every Ping->Pong round trip during the load. */
    pongMs: Summary;
    /** Only the Pongs that arrived with no big result received while their Ping was out. */
    pongNotBehindBigMs: Summary;
    /** How many of the Pongs came after a big result that arrived while their Ping was out. */
    pongsBehindBig: number;
    /** One frame of a big result's size over ZeroMQ on loopback, the machine quiet: what a Pong behind one waits at least. */
    wireFrameMs: Summary;
    loopDelayMs: LoopDelay | null;
    rssMaxBytes: number | null;
    cpu: CpuFigures;
    phasesMs: Record<string, number | null>;
    verified: { ok: boolean; detail: string };
  };
  idleLoopDelayMs: LoopDelay | null;
  memory: {
    idleBytes: number | null;
    idleAfterWarmupBytes: number | null;
    afterLeakJobsBytes: number | null;
    leakJobs: number;
    /** afterLeakJobs / idleAfterWarmup */
    growthRatio: number | null;
    /** Least-squares slope of RSS over the leak check, from its 20 % point on (KB per job): growth that goes on. */
    slopeKbPerJob: number | null;
    underLoadMaxBytes: number | null;
    afterLoadBytes: number | null;
    /** RSS while the leak-check jobs ran (jobs done since the idle-after-warm-up reading). */
    leakCurve: Array<{ jobs: number; rssBytes: number }>;
    threads: { idle: number | null; afterWarmup: number | null; afterLeakJobs: number | null; underLoadMax: number | null };
  };
  cpu: CpuFigures & {
    c: number;
    agentIdleMsPerS: number | null;
    /** The same jobs' agent CPU by thread (bench/threads.ts); null when the leak check ran no jobs of its own. */
    byThread: ThreadCpu | null;
    jobFolder: JobFolderFigures;
  };
  /** Engine calls per trivial job, by kind (bench/calls.ts); null when not counted. */
  engineCalls: EngineCallFigures | null;
  /** Ping->Pong over every agent level (not the load phase). */
  pongAllLevelsMs: Summary;
  targets: Target[];
  problems: string[];
}
