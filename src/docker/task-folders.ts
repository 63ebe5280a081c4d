/**
 * How the agent gives jobs their task folders, set up once at start: the layer folders a killed
 * run left on the layers' place removed (as the reaper removes job directories), then the way
 * chosen by the start-up check (layer-check.ts) unless --copy-task-folders, and logged in one line
 * an operator can grep (`check: "task-folders"`, with `way` and why each better way was refused).
 * At the end the agent's own folder on the layers' place goes too, when empty.
 */
import { rmdirSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { agentLayersDir } from "../jobs/layer-place.js";
import { chooseTaskFolders, removeLayerFolder, type LayerCheckSetup, type TaskFolders } from "./layer-check.js";
import { containerLabels } from "./labels.js";
import { removeLeftoverJobDirectories } from "./reaper.js";

export const COPY_TASK_FOLDERS: TaskFolders = { mode: "copy", layersDir: null, metacopy: false, refused: [] };

export async function setUpTaskFolders(docker: Docker, s: LayerCheckSetup & { copy: boolean }, log: Logger): Promise<TaskFolders> {
  if (s.layersPlace !== null) {
    const labels = containerLabels(s.agent, "reaper", "grading");
    await removeLeftoverJobDirectories(agentLayersDir(s.layersPlace, s.agent), s.agent, log, "layer folders", async (dir) => {
      if (s.image === null || !(await removeLayerFolder(docker, s.image, dir, labels, log))) throw new Error(`cannot remove ${dir}`);
    });
  }
  if (s.copy) {
    log.info({ check: "task-folders", mode: "copy", way: "copy" }, "task folders are copied into job directories (--copy-task-folders)");
    removeAgentLayersDir(s.layersPlace, s.agent);
    return COPY_TASK_FOLDERS;
  }
  const chosen = await chooseTaskFolders(docker, s, log);
  const fields = { check: "task-folders", way: chosen.mode, layersDir: chosen.layersDir, metacopy: chosen.metacopy, refused: chosen.refused };
  if (chosen.mode === "copy") {
    log.warn({ ...fields, mode: "copy", reason: chosen.refused.join("; ") }, "task folders are copied into job directories: the engine cannot layer them here");
  } else {
    const where = chosen.layersDir ?? "each job directory";
    const how = chosen.metacopy ? " with metacopy" : "";
    log.info({ ...fields, mode: "layered" }, `a job's /task is a writable layer over its task folder (no copy), the layer in ${where}${how}: ${chosen.mode}`);
  }
  if (chosen.layersDir === null) removeAgentLayersDir(s.layersPlace, s.agent);
  return chosen;
}

/** The agent's folder on the layers' place and the shared one above it, each when empty. */
export function removeAgentLayersDir(place: string | null, agent: string): void {
  if (place === null) return;
  const own = agentLayersDir(place, agent);
  for (const dir of [own, path.dirname(own)]) {
    try {
      rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") return; // not empty: another agent's folder is in it
    }
  }
}
