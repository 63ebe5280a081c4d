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

/** Writable layer of a container on overlay2 in its inspect, if any. */
export function upperDirOf(info: Docker.ContainerInspectInfo): string | null {
  const dir = (info.GraphDriver?.Data as Record<string, string> | undefined)?.["UpperDir"];
  return typeof dir === "string" ? dir : null;
}

/** Writable layer of a container on overlay2, when this process can see it. */
export async function upperDir(container: Docker.Container): Promise<string | null> {
  try {
    return upperDirOf(await withDeadline("inspect", ENGINE_CALL_MS, (abortSignal) => container.inspect({ abortSignal })));
  } catch {
    return null;
  }
}

/** Starts counting what the job writes; the task's own files (already there) are not counted. */
export async function watchDiskLimit(ctx: JobContext, container: Docker.Container, diskMb: number, log: Logger): Promise<void> {
  // a warm container's adoption inspected it already
  const upper = ctx.upperDir?.containerId === container.id ? ctx.upperDir.dir : await upperDir(container);
  if (upper === null) log.warn("cannot see the container's writable layer: only the job directory counts for the disk limit");
  ctx.diskRoots.push(ctx.task.jobDir);
  if (upper !== null) ctx.diskRoots.push(upper);
  const baseline = await diskUsage([ctx.task.jobDir]);
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
