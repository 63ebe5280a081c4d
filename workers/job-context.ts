/**
 * The state one job shares between the worker's pieces (grading run, student containers, warm
 * adoption, limits, cleanup): its task, the thread's Docker client and channel to the main thread,
 * its logger and phase timings, the containers it made and how it is ending. A plain object the
 * pieces take as their first argument, with the few helpers that every piece needs: the phase
 * clock, failing the job once, writing to the grading container, killing its containers, and
 * making an engine call under its deadline (src/docker/deadline.ts), remembering a call that
 * timed out so that the cleanup makes sure nothing of the job is left (workers/cleanup.ts).
 */
import type { LayerTally } from "../src/limits/layer-memory.js";
import type * as Comlink from "comlink";
import type Docker from "dockerode";
import type { Logger } from "../src/log.js";
import { ENGINE_CALL_MS, EngineTimeoutError, withDeadline } from "../src/docker/deadline.js";
import { killQuietly } from "../src/docker/engine.js";
import type { DiskWatch } from "../src/limits/disk-usage.js";
import type { JobPaths } from "../src/jobs/job-directory.js";
import type { JobTask, MainApi, PhaseTimings } from "../src/jobs/job-task.js";
import { LogLimiter } from "../src/log-limit.js";
import { encodeContainerMessage } from "../src/protocol/container-stream.js";
import type { Packable } from "../src/protocol/msgpack.js";
import { STDIN_WAITING_MAX_BYTES, type GradingStdin } from "./grading-stdin.js";

/** A student container the grading container asked for, by its socket id. */
export interface StudentRun {
  id: string | null;
  ports: number[];
  /** internal port 22 -> external */
  sshPort: number | null;
  /** The socket it binds, as pinned in the job's student-sockets/ (workers/student-binds.ts). */
  socket: string | null;
  done: Promise<void>;
}

export interface JobContext {
  readonly task: JobTask;
  readonly docker: Docker;
  readonly api: Comlink.Remote<MainApi>;
  readonly log: Logger;
  readonly timings: PhaseTimings;
  /** When the current phase began (performance.now()). */
  phaseStart: number;
  paths: JobPaths | null;
  grading: Docker.Container | null;
  /** The grading container's stdin, once attached. */
  stdin: GradingStdin | null;
  /** socket_id -> run, for the runs not over yet (waiting, running, or whose container is still to be removed) */
  readonly students: Map<string, StudentRun>;
  /** The socket ids of the job's runs that are over: a socket id is used once. */
  readonly usedSockets: Set<string>;
  /** Student containers holding one of the job's task.studentContainers slots, and the runs waiting for one. */
  readonly studentSlots: { running: number; waiting: Array<() => void> };
  /** Why the job is being ended early, once something decided it (the first reason wins). */
  fatal: string | null;
  /** Set once SSH access was handed to the main thread (it sends one per job). */
  sshForwarded: boolean;
  /** Set once the grading container has exited: no student container may start after it. */
  parentGone: boolean;
  /** Directories the disk limit counts: the job directory and each container's writable layer. */
  readonly diskRoots: string[];
  disk: DiskWatch | null;
  /** A container's writable layer, as an inspect of it already said (a warm container's adoption). */
  upperDir?: { containerId: string; dir: string | null };
  /** The engine calls of this job that went past their deadline, by name. */
  readonly timedOut: string[];
  /** The job's lines that its grader's messages cause, at most so many a second (src/log-limit.ts). */
  readonly floodLog: LogLimiter;
  /** MB reserved for its layered /task's kernel memory and added to the grading container's limit (src/limits/layer-memory.ts). */
  layerMemoryMb: number;
  /** The walk's count of a task's warm container's layer, when a job takes it (for its allowance). */
  tally: LayerTally | null;
}

export function createJobContext(task: JobTask, docker: Docker, api: Comlink.Remote<MainApi>, threadLog: Logger): JobContext {
  const log = threadLog.child({ job: task.jobId });
  return {
    task, docker, api, log,
    timings: {},
    phaseStart: performance.now(),
    paths: null, grading: null, stdin: null,
    students: new Map(), usedSockets: new Set(),
    studentSlots: { running: 0, waiting: [] },
    fatal: null, parentGone: false, sshForwarded: false,
    diskRoots: [], disk: null,
    timedOut: [],
    floodLog: new LogLimiter(log),
    layerMemoryMb: 0, tally: null,
  };
}

/** Ends the current phase under `name` and starts the next one. */
export function phase(ctx: JobContext, name: keyof PhaseTimings): void {
  const now = performance.now();
  ctx.timings[name] = Math.round((now - ctx.phaseStart) * 10) / 10;
  ctx.phaseStart = now;
}

/** Ends the job with `text` (once: the first reason stays) and kills its grading container. */
export function failJob(ctx: JobContext, text: string, log: Logger): void {
  if (ctx.fatal !== null) return;
  ctx.fatal = text;
  log.warn({ reason: text }, "ending job");
  if (ctx.grading) void killContainer(ctx, ctx.grading.id);
}

/**
 * One engine call of the job under its deadline (ENGINE_CALL_MS unless given): `run` gets the
 * AbortSignal to pass as dockerode's `abortSignal`. A timeout is logged and remembered.
 */
export async function engineCall<T>(ctx: JobContext, call: string, run: (signal: AbortSignal) => Promise<T>, ms = ENGINE_CALL_MS): Promise<T> {
  try {
    return await withDeadline(call, ms, run);
  } catch (err) {
    if (err instanceof EngineTimeoutError) {
      ctx.timedOut.push(call);
      ctx.log.warn({ call, ms: err.ms }, "engine call timed out");
    }
    throw err;
  }
}

/** Kills a container of the job (already stopped or gone is fine); false when the engine failed or did not answer. */
export function killContainer(ctx: JobContext, id: string): Promise<boolean> {
  return engineCall(ctx, "kill", () => killQuietly(ctx.docker, id, ctx.log)).catch(() => false);
}

/**
 * Writes a message to the grading container's stdin (workers/grading-stdin.ts): a grader that
 * leaves more than STDIN_WAITING_MAX_BYTES of them unread ends the job.
 */
export function writeToGrading(ctx: JobContext, message: { type: string } & Record<string, Packable>): void {
  if (ctx.stdin === null) return;
  const how = ctx.stdin.write(encodeContainerMessage(message));
  if (how === "over") {
    const mib = STDIN_WAITING_MAX_BYTES / (1024 * 1024);
    failJob(ctx, `The grading container stopped reading its standard input: more than ${mib} MiB of the agent's messages to it were waiting.`, ctx.log);
  }
}

/** Kills every student container of the job that exists (without waiting for their runs). */
export function killStudents(ctx: JobContext): Promise<unknown> {
  return Promise.all([...ctx.students.values()].map((run) => (run.id === null ? Promise.resolve() : killContainer(ctx, run.id))));
}
