/**
 * A layered job's allowance for its layer's kernel memory (src/limits/layer-memory.ts): counted
 * by the walk that checks the task can be layered, reserved from the main thread beside the job's
 * own memory (it may wait there for memory, as a student container does), and added to the
 * grading container's limit. Refused (it could never fit beside the job's own): the job copies its
 * task, as the Python agent does, and its container pays nothing for the walk.
 */
import path from "node:path";
import type { JobTask } from "../src/jobs/job-task.js";
import { isTmpfs } from "../src/jobs/layer-place.js";
import { LAYER_HOLDER, layerAllowanceMb, newTally, type LayerTally } from "../src/limits/layer-memory.js";
import type { JobContext } from "./job-context.js";

/** An empty tally for the job's layer: files' data counts when it would be copied up into memory. */
export function layerTally(t: JobTask): LayerTally {
  return newTally(!t.layerMetacopy && isTmpfs(t.taskLayersDir ?? path.dirname(t.jobDir)));
}

/** Reserves the tally's allowance for the job (replacing one it held); false when the main thread refused it. */
export async function reserveLayerMemory(ctx: JobContext, tally: LayerTally): Promise<boolean> {
  await releaseLayerMemory(ctx);
  const mb = layerAllowanceMb(tally);
  if (mb === 0) return true;
  if (!(await ctx.api.reserveMemory(ctx.task.jobId, LAYER_HOLDER, mb))) {
    ctx.log.warn({ entries: tally.entries, allowanceMb: mb }, "no memory for the layer's allowance: the task folder is copied instead");
    return false;
  }
  ctx.layerMemoryMb = mb;
  ctx.log.debug({ entries: tally.entries, allowanceMb: mb }, "layer allowance reserved");
  return true;
}

/** Gives back the allowance (the job drops its layer for a copy). */
export async function releaseLayerMemory(ctx: JobContext): Promise<void> {
  if (ctx.layerMemoryMb === 0) return;
  ctx.layerMemoryMb = 0;
  await ctx.api.releaseMemory(ctx.task.jobId, LAYER_HOLDER);
}
