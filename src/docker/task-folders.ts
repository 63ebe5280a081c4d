/**
 * How the agent gives jobs their task folders, set up once at start: the agent's folder on the
 * layers' place made or checked (layer-place.ts: its user's alone, else not used), the layer
 * folders a killed run left there removed (as the reaper removes job directories, whether or not a
 * grading image exists), then the way chosen by the start-up check (layer-check.ts) unless
 * --copy-task-folders, and logged in one line an operator can grep (`check: "task-folders"`, with
 * `way` and why each better way was refused). At the end the agent's own folder on the layers'
 * place goes too, when empty.
 */
import { rmdirSync } from "node:fs";
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { makeAgentLayersDir } from "../jobs/layer-place.js";
import { chooseTaskFolders, removeLayerFolder, type LayerCheckSetup, type TaskFolders } from "./layer-check.js";
import { containerLabels } from "./labels.js";
import { removeLeftoverJobDirectories, type LeftBy } from "./reaper.js";

export const COPY_TASK_FOLDERS: TaskFolders = { mode: "copy", layersDir: null, metacopy: false, refused: [] };

export interface TaskFolderSetup extends Omit<LayerCheckSetup, "layers"> {
  /** The layers' place (layer-place.ts chosenLayersDir), or null: job directories only. */
  layersPlace: string | null;
  /** --copy-task-folders */
  copy: boolean;
}

export async function setUpTaskFolders(docker: Docker, s: TaskFolderSetup, log: Logger): Promise<TaskFolders> {
  let layers: LayerCheckSetup["layers"] = null;
  if (s.layersPlace !== null) {
    try {
      layers = { dir: makeAgentLayersDir(s.layersPlace, s.agent) };
    } catch (err) {
      layers = { refused: (err as Error).message };
    }
  }
  const own = layers !== null && "dir" in layers ? layers.dir : null;
  if (own !== null) await removeLeftoverLayerFolders(docker, own, s, log);
  if (s.copy) {
    log.info({ check: "task-folders", mode: "copy", way: "copy" }, "task folders are copied into job directories (--copy-task-folders)");
    removeAgentLayersDir(own);
    return COPY_TASK_FOLDERS;
  }
  const chosen = await chooseTaskFolders(docker, { ...s, layers }, log);
  const fields = { check: "task-folders", way: chosen.mode, layersDir: chosen.layersDir, metacopy: chosen.metacopy, refused: chosen.refused };
  if (chosen.mode === "copy") {
    log.warn({ ...fields, mode: "copy", reason: chosen.refused.join("; ") }, "task folders are copied into job directories: the engine cannot layer them here");
  } else {
    const where = chosen.layersDir ?? "each job directory";
    const how = chosen.metacopy ? " with metacopy" : "";
    const but = chosen.refused.length > 0 ? ` (not better: ${chosen.refused.join("; ")})` : "";
    log.info({ ...fields, mode: "layered" }, `a job's /task is a writable layer over its task folder (no copy), the layer in ${where}${how}: ${chosen.mode}${but}`);
  }
  if (chosen.layersDir === null) removeAgentLayersDir(own);
  return chosen;
}

/** Those of the agent's own folder `dir` (checked); root's files through a grading image's container when there is one. */
export async function removeLeftoverLayerFolders(
  docker: Docker, dir: string, s: Pick<TaskFolderSetup, "agent" | "image">, log: Logger, by?: LeftBy,
): Promise<void> {
  const labels = containerLabels(s.agent, "reaper", "grading");
  await removeLeftoverJobDirectories(dir, s.agent, log, "layer folders", async (folder) => {
    if (!(await removeLayerFolder(docker, s.image, folder, labels, log))) {
      throw new Error(`cannot remove ${folder}${s.image === null ? ": files of root's, and no grading image to remove them with" : ""}`);
    }
  }, by);
}

/** The agent's own folder on the layers' place (as makeAgentLayersDir returned it), when empty. */
export function removeAgentLayersDir(dir: string | null): void {
  if (dir === null) return;
  try {
    rmdirSync(dir);
  } catch {
    /* gone, or not empty (a layer folder that could not be removed): kept */
  }
}
