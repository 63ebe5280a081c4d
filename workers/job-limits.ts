/**
 * A job's limits as its worker watches them, beyond the CPU and wall time of each container
 * (src/limits/container-watch.ts): the disk limit over the job directory and every container's
 * writable layer, which kills all the job's containers when crossed, and after a container's exit
 * whether it ran out of memory. The polling and reading themselves live in src/limits/.
 */
import os from "node:os";
import type Docker from "dockerode";
import type { Logger } from "../src/log.js";
import { ENGINE_CALL_MS, withDeadline } from "../src/docker/deadline.js";
import { diskUsage, watchDisk } from "../src/limits/disk-usage.js";
import { statsDelayMs } from "../src/limits/container-watch.js";
import { ranOutOfMemory } from "../src/limits/oom.js";
import { failJob, killStudents, type JobContext } from "./job-context.js";

/** Containers get no CPU quota: each may use every CPU of the host. */
const HOST_CPUS = os.cpus().length;

/** How long a container with this CPU limit can go without its stats stream (see statsDelayMs). */
export function statsDelay(cpuSeconds: number): number {
  return statsDelayMs(cpuSeconds, HOST_CPUS);
}

/** Writable layer of a container on overlay2, when this process can see it. */
export async function upperDir(container: Docker.Container): Promise<string | null> {
  try {
    const info = await withDeadline("inspect", ENGINE_CALL_MS, (abortSignal) => container.inspect({ abortSignal }));
    const dir = (info.GraphDriver?.Data as Record<string, string> | undefined)?.["UpperDir"];
    return typeof dir === "string" ? dir : null;
  } catch {
    return null;
  }
}

/** Starts counting what the job writes; the task's own files (already there) are not counted. */
export async function watchDiskLimit(ctx: JobContext, container: Docker.Container, diskMb: number, log: Logger): Promise<void> {
  const upper = await upperDir(container);
  if (upper === null) log.warn("cannot see the container's writable layer: only the job directory counts for the disk limit");
  ctx.diskRoots.push(ctx.task.jobDir);
  // A layered /task's writable layer (src/jobs/task-layer.ts) holds what the job wrote there,
  // wherever it lives (a layer folder on a tmpfs: src/jobs/layer-place.ts).
  const layer = ctx.paths?.taskVolume != null ? ctx.paths.layer : null;
  if (layer !== null) ctx.diskRoots.push(ctx.paths!.upper);
  if (upper !== null) ctx.diskRoots.push(upper);
  // A layered /task starts empty, but what the grader changes of the task's own files is copied
  // up into it whole (an image that chowns /task copies it all, unless the layer has metacopy):
  // the task's size is allowed on top, as the copy's files are in the baseline of a copied /task.
  const layered = ctx.paths?.taskVolume != null && ctx.task.taskDir !== null;
  const baseline = await diskUsage([ctx.task.jobDir, ...(layer !== null ? [ctx.paths!.upper] : []), ...(layered ? [ctx.task.taskDir!] : [])]);
  ctx.disk = watchDisk(() => ctx.diskRoots, baseline + diskMb * 1024 * 1024, (bytes) => {
    log.info({ bytes, limitMb: diskMb }, "job over its disk limit: killing its containers");
    failJob(ctx, "disk limit", log);
    void killStudents(ctx);
  });
}

/** After exit: OOMKilled from inspect, and on cgroup v2 the last memory.events read while it ran. */
export async function inspectOomKilled(container: Docker.Container, memoryEvents: string | null = null): Promise<boolean> {
  let state = null;
  try {
    state = (await withDeadline("inspect", ENGINE_CALL_MS, (abortSignal) => container.inspect({ abortSignal }))).State ?? null;
  } catch {
    /* gone */
  }
  return ranOutOfMemory({ oomEvent: false, state, memoryEvents });
}
