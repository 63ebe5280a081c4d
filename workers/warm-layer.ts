/**
 * Warm containers for a heavy task (src/jobs/warm-pool.ts): made with the task's overlay volume
 * (src/jobs/task-layer.ts) as their /task before any job, so that the job that takes one copies
 * nothing of the task. The overlay's lower layer is the live task folder, so a job sees the task
 * as it is when it runs, as a cold job would; the few folders a layered job directory holds as
 * copies (task/student, task/systemfiles, course/common) are copied again when a job takes the
 * container, and a task that can no longer be layered is not run in it. Also: telling the main
 * thread whether a job's task is heavy and layered, by a walk that stops at HEAVY_TASK_ENTRIES.
 */
import { existsSync, readdirSync, rmSync, type Dirent } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import { ENGINE_CALL_MS, withDeadline } from "../src/docker/deadline.js";
import { copyChecked, prepareLayeredJobDirectory, refuseLinks, TaskFolderError, type JobPaths } from "../src/jobs/job-directory.js";
import type { JobTask, WarmTask } from "../src/jobs/job-task.js";
import { layerRefusal, taskVolumeName, taskVolumeSpec } from "../src/jobs/task-layer.js";
import { HEAVY_TASK_ENTRIES } from "../src/jobs/warm-pool.js";
import type { JobContext } from "./job-context.js";
import { jobLayerOf } from "../src/jobs/layer-place.js";
import type { LayerTally } from "../src/limits/layer-memory.js";
import { describeFolder, folderIdentity, sameFolder, type FolderIdentity } from "../src/jobs/task-identity.js";

/** Entries (files, folders, links) under `dir`, counted up to `limit` at most; links are not followed. */
export function countEntriesUpTo(dir: string, limit: number): number {
  let n = 0;
  const walk = (d: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (++n >= limit) return;
      if (e.isDirectory()) walk(path.join(d, e.name));
      if (n >= limit) return;
    }
  };
  walk(dir);
  return Math.min(n, limit);
}

/**
 * Tells the main thread whether the job's task is heavy and layered (layered task folders only).
 * `layered` is asked only of a heavy task: whether its /task is, or could be, a layer of it.
 */
export function reportTaskWeight(ctx: JobContext, layered: () => boolean): void {
  const t = ctx.task;
  if (!t.layeredTasks || t.taskDir === null) return;
  const heavy = countEntriesUpTo(t.taskDir, HEAVY_TASK_ENTRIES) >= HEAVY_TASK_ENTRIES && layered();
  ctx.api.taskWeight(t.jobId, heavy).catch(() => {});
}

/**
 * The job directory of a warm container made for a task: its layer's directories and volume
 * (created by the engine, with the warm container's labels), and the folder the layer is made
 * over (its identity is taken first: a swap of the task folder from then on is seen by the job
 * that takes the container). The reason instead when the task cannot be layered now (nothing is
 * made then).
 */
export async function prepareWarmLayer(
  docker: Docker, task: WarmTask & { taskDir: string; courseDir: string },
): Promise<{ paths: JobPaths; lower: FolderIdentity } | string> {
  let lower: FolderIdentity;
  try {
    lower = folderIdentity(task.taskDir);
  } catch (err) {
    return `cannot resolve the task folder: ${(err as Error).message}`;
  }
  const refused = layerRefusal(lower.path, task.courseDir, task.jobDir);
  if (refused !== null) return refused;
  const volume = taskVolumeName(task.jobDir);
  let p: JobPaths;
  try {
    p = prepareLayeredJobDirectory(task.jobDir, task.jobDirMarker, task.taskDir, task.courseDir, volume, jobLayerOf(task));
  } catch (err) {
    if (err instanceof TaskFolderError) return err.message;
    throw err;
  }
  const spec = taskVolumeSpec(volume, lower.path, p.upper, p.work, task.labels, task.layerMetacopy);
  await withDeadline("volume create", ENGINE_CALL_MS, (abortSignal) => docker.createVolume({ ...spec, abortSignal }));
  return { paths: p, lower };
}

/** Empties `dir` but for the entries named in `keep` (mount points of the container). */
function emptyDir(dir: string, keep: readonly string[] = []): void {
  for (const name of readdirSync(dir)) {
    if (!keep.includes(name)) rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}

/** Copies `src` (when there is one) into `dst` with the job directory's checks. */
function copyInto(src: string, dst: string, courseDir: string, label: string, opened: readonly string[]): void {
  if (existsSync(src)) copyChecked(src, dst, courseDir, label, opened);
}

/** Why a job does not run in a task's warm container: the task cannot be layered now, or its folder is another one. */
export interface WarmLayerRefusal {
  reason: string;
  /** The task folder is not the one the container's layer was made over: that one, and what it is now. */
  changed: { was: FolderIdentity; now: FolderIdentity } | null;
}

/**
 * What a job that takes a task's warm container does instead of copying its task: the task folder
 * must still be the folder the container's layer was made over (`lower`; a course updated by a
 * swap of the task folder is another folder) and still be layered (else why not, and the job goes
 * to a new container); the folders the job directory holds as copies are made again from the task
 * as it is now (they are mount points of the container: emptied, not replaced).
 */
export function refreshWarmLayer(t: JobTask, p: JobPaths, lower: FolderIdentity | null, tally?: LayerTally): WarmLayerRefusal | null {
  if (t.taskDir === null || t.courseDir === null) return { reason: "the job has no task", changed: null };
  let now: FolderIdentity;
  try {
    now = folderIdentity(t.taskDir);
  } catch (err) {
    return { reason: `cannot resolve the task folder: ${(err as Error).message}`, changed: null };
  }
  if (lower === null) return { reason: "its warm container's layer was made over a folder not recorded", changed: null };
  if (!sameFolder(lower, now)) {
    return { reason: `the task folder is ${describeFolder(now)}, its warm container's layer was made over ${describeFolder(lower)}`, changed: { was: lower, now } };
  }
  const refused = layerRefusal(t.taskDir, t.courseDir, t.jobDir, tally);
  if (refused !== null) return { reason: refused, changed: null };
  refuseLinks(t.taskDir, "task", ["student", path.join("student", "scripts"), "systemfiles"]);
  emptyDir(p.student);
  emptyDir(p.systemfiles);
  emptyDir(p.courseCommon, ["student"]);
  emptyDir(p.courseCommonStudent);
  copyInto(path.join(t.taskDir, "student"), p.student, t.courseDir, "task/student", ["scripts"]);
  copyInto(path.join(t.taskDir, "systemfiles"), p.systemfiles, t.courseDir, "task/systemfiles", []);
  copyInto(path.join(t.courseDir, "$common"), p.courseCommon, t.courseDir, "$common", ["student"]);
  return null;
}
