/**
 * A job's limits as its worker watches them, beyond the CPU and wall time of each container
 * (src/limits/container-watch.ts): the disk limit over the job directory and every container's
 * writable layer, which kills all the job's containers when crossed, and after a container's exit
 * whether it ran out of memory. The polling and reading themselves live in src/limits/.
 */
import { readFileSync } from "node:fs";
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

/**
 * Where the engine keeps its overlay2 layers, once an inspect's writable layer has been found
 * again through the engine's layer store (`<root>/image/overlay2/layerdb/mounts/<container>/mount-id`
 * names `<root>/overlay2/<mount-id>/diff`): from then on this thread reads a container's writable
 * layer there, a file read instead of an inspect. false: this engine lays its layers out otherwise
 * (another driver, the containerd snapshotter): always inspect.
 */
let layerRoot: string | null | false = null;

function layerStoreUpperDir(root: string, containerId: string): string | null {
  if (!/^[0-9a-f]{64}$/.test(containerId)) return null;
  try {
    const mount = readFileSync(`${root}/image/overlay2/layerdb/mounts/${containerId}/mount-id`, "utf8").trim();
    return /^[0-9a-z]+$/.test(mount) ? `${root}/overlay2/${mount}/diff` : null;
  } catch {
    return null;
  }
}

/** Learns the layer root from a container's writable layer as its inspect gave it, once. */
export function learnLayerRoot(containerId: string, upper: string | null): void {
  if (layerRoot !== null || upper === null) return;
  const m = /^(\/.*)\/overlay2\/[0-9a-z]+\/diff$/.exec(upper);
  layerRoot = m !== null && layerStoreUpperDir(m[1]!, containerId) === upper ? m[1]! : false;
}

/** Writable layer of a container on overlay2, when this process can see it. */
export async function upperDir(container: Docker.Container): Promise<string | null> {
  const known = layerRoot ? layerStoreUpperDir(layerRoot, container.id) : null;
  if (known !== null) return known;
  try {
    const dir = upperDirOf(await withDeadline("inspect", ENGINE_CALL_MS, (abortSignal) => container.inspect({ abortSignal })));
    learnLayerRoot(container.id, dir);
    return dir;
  } catch {
    return null;
  }
}

/** Starts counting what the job writes; the task's own files (already there) are not counted. */
export async function watchDiskLimit(ctx: JobContext, container: Docker.Container, diskMb: number, log: Logger): Promise<void> {
  // a warm container's adoption inspected it already
  const inspected = ctx.upperDir?.containerId === container.id ? ctx.upperDir.dir : undefined;
  if (inspected !== undefined) learnLayerRoot(container.id, inspected);
  const upper = inspected !== undefined ? inspected : await upperDir(container);
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
