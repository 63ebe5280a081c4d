/**
 * Where jobs' writable layers (src/jobs/task-layer.ts) live. The grading images change the owner
 * and mode of every file of /task when a job starts and ends, and overlayfs copies a file up
 * before changing it: with the layer on a tmpfs and metacopy that walk touches no disk and copies
 * no data. So by default the layers are made on /dev/shm when it is a tmpfs; --task-layers-dir
 * names another place; without either, in each job's directory. Each agent has its own folder
 * there, `<dir>/inginious-agent-layers-<agent id>` (its user's alone, mode 0700), and each job a
 * layer folder in it, named as its job directory and carrying the same marker, so that the reaper
 * removes what a killed agent left just as it removes job directories.
 */
import { statfsSync } from "node:fs";
import path from "node:path";
import type { PoolSettings } from "./job-task.js";
import { privateFolder } from "./private-folder.js";

/** The default place of jobs' layers, when it is a tmpfs. */
export const DEFAULT_LAYERS_DIR = "/dev/shm";
/** The start of the name of every agent's own folder on the layers' place (the agent id follows). */
export const LAYERS_FOLDER = "inginious-agent-layers";
const TMPFS_MAGIC = 0x01021994;

/** How a job's /task is given, best first: the label of the start-up log line and of the metric. */
export const TASK_FOLDER_MODES = ["layers-dir-metacopy", "layers-dir", "job-dir-metacopy", "job-dir", "copy"] as const;
export type TaskFolderMode = (typeof TASK_FOLDER_MODES)[number];

export function isTmpfs(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** The place asked for: --task-layers-dir, else /dev/shm when it is a tmpfs, else null (job directories). */
export function chosenLayersDir(configured: string | null | undefined): string | null {
  if (configured != null && configured !== "") return path.resolve(configured);
  return isTmpfs(DEFAULT_LAYERS_DIR) ? DEFAULT_LAYERS_DIR : null;
}

/** The agent's own folder on the layers' place. */
export function agentLayersDir(dir: string, agent: string): string {
  return path.join(dir, `${LAYERS_FOLDER}-${agent}`);
}

/** A job's layer folder (upper/ and work/), or null when its layer is in its job directory. */
export function jobLayerFolder(agentLayers: string | null, jobDir: string): string | null {
  return agentLayers === null ? null : path.join(agentLayers, path.basename(jobDir));
}

/**
 * Makes (or checks) the agent's folder on the layers' place, a private folder of its user's
 * (private-folder.ts): a folder another user made there first, or one open to others, would let
 * them swap a job's layer or read what graders write. Returns its real path; throws with the reason.
 */
export function makeAgentLayersDir(dir: string, agent: string): string {
  return privateFolder(dir, path.basename(agentLayersDir(dir, agent)));
}

/** The job's layer folder outside its directory, whether or not it was made (null: none). */
export function jobLayerOf(t: Pick<PoolSettings, "layeredTasks" | "taskLayersDir"> & { jobDir: string }): string | null {
  return jobLayerFolder(t.layeredTasks ? t.taskLayersDir : null, t.jobDir);
}
