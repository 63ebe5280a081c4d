/**
 * The piscina entry of a pool thread. `runJob` (the default export) runs one job: its grading run
 * (workers/grading-run.ts), the outcome reported to the main thread as soon as it is known, then
 * the cleanup of everything the job made (workers/cleanup.ts). `createWarm`, called by name by the
 * warm pool, makes a warm grading container (workers/warm.ts). The pieces share one per-job
 * context (workers/job-context.ts); the main thread is told of each container through comlink,
 * so that it can kill and remove them even if this thread dies.
 */
import * as Comlink from "comlink";
import { move, transferableSymbol, valueSymbol } from "piscina";
import type { GradingOutcome, JobSpec, WarmCreated, WarmSpec, WorkerOutcome } from "../src/jobs/job-task.js";
import { OWN_BUFFER_BYTES } from "../src/protocol/msgpack.js";
import { cleanup } from "./cleanup.js";
import { runGrading } from "./grading-run.js";
import { createJobContext, phase, type JobContext } from "./job-context.js";
import { docker, mainApi, settings, threadLog } from "./thread.js";
import { createWarm as makeWarm } from "./warm.js";

/** piscina calls this for every job. */
export default async function runJob(spec: JobSpec): Promise<WorkerOutcome> {
  const ctx = createJobContext({ ...spec, ...settings }, docker, mainApi, threadLog);
  const outcome = await run(ctx);
  const frame = outcome.kind === "encoded-result" ? ownedFrame(outcome.frame) : null;
  if (frame === null) return outcome;
  return move({ [transferableSymbol]: [frame], [valueSymbol]: outcome }) as unknown as WorkerOutcome;
}

/** piscina calls this (name "createWarm") to make a warm container: directory, create, start. */
export function createWarm(spec: WarmSpec): Promise<WarmCreated> {
  return makeWarm(docker, threadLog, { ...spec, ...settings });
}

async function run(ctx: JobContext): Promise<WorkerOutcome> {
  let outcome: GradingOutcome | null = null;
  let reported = false;
  try {
    outcome = { ...(await runGrading(ctx)), timings: { ...ctx.timings } };
    // The result goes out now; removing the containers and the directory follows.
    reported = await report(ctx, outcome);
  } finally {
    ctx.phaseStart = performance.now();
    await cleanup(ctx);
    phase(ctx, "cleanup");
  }
  return reported ? { kind: "reported", timings: ctx.timings } : { ...outcome, timings: ctx.timings };
}

/** Hands the outcome to the main thread (a big frame by transfer); false if that failed. */
async function report(ctx: JobContext, outcome: GradingOutcome): Promise<boolean> {
  try {
    const frame = outcome.kind === "encoded-result" ? ownedFrame(outcome.frame) : null;
    await ctx.api.jobOutcome(ctx.task.jobId, frame === null ? outcome : Comlink.transfer(outcome, [frame]));
    return true;
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message }, "could not report the outcome early: it goes with the end of the task");
    return false;
  }
}

/**
 * The ArrayBuffer of a big result's frame, when it may be transferred to the main thread:
 * copying tens of MB there (and faulting in the pages) held its event loop for up to a second.
 * Only a frame with an ArrayBuffer of its own (pack gives one from OWN_BUFFER_BYTES on)
 * qualifies: a small one may share node's buffer pool with other live buffers.
 */
function ownedFrame(frame: Uint8Array): ArrayBuffer | null {
  if (frame.byteLength < OWN_BUFFER_BYTES || frame.byteOffset !== 0) return null;
  return frame.buffer as ArrayBuffer;
}
