/** Removes what an earlier run of this same agent left: its labelled containers and volumes, its job directories and their layer folders. */
import { promises as fs } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JOB_DIR_MARKER, JOB_DIR_PREFIX, removeJobDirectory } from "../jobs/job-directory.js";
import { removeQuietly, removeVolumeQuietly } from "./engine.js";
import { LABEL_AGENT } from "./labels.js";

export async function removeLeftoverContainers(docker: Docker, agent: string, log: Logger): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agent}`] } });
  await Promise.all(list.map((c) => removeQuietly(docker, c.Id, log)));
  if (list.length > 0) log.info({ count: list.length }, "removed containers left by an earlier run of this agent");
  return list.length;
}

/** The layered /task volumes (jobs/task-layer.ts) of its jobs: after its containers, which held them. */
export async function removeLeftoverVolumes(docker: Docker, agent: string, log: Logger): Promise<number> {
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL_AGENT}=${agent}`] } });
  const list = Volumes ?? [];
  await Promise.all(list.map((v) => removeVolumeQuietly(docker, v.Name, log)));
  if (list.length > 0) log.info({ count: list.length }, "removed volumes left by an earlier run of this agent");
  return list.length;
}

/**
 * Only directories named job-* that carry this agent's marker are touched: never --tmpdir itself.
 * The same for the jobs' layer folders (jobs/layer-place.ts), with their own `what` and `remove`.
 */
export async function removeLeftoverJobDirectories(
  tmpdir: string, agent: string, log: Logger, what = "job directories", remove: (dir: string) => Promise<void> = removeJobDirectory,
): Promise<number> {
  let entries: string[];
  try {
    entries = await fs.readdir(tmpdir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of entries) {
    if (!name.startsWith(JOB_DIR_PREFIX)) continue;
    const dir = path.join(tmpdir, name);
    let marker: string;
    try {
      marker = await fs.readFile(path.join(dir, JOB_DIR_MARKER), "utf8");
    } catch {
      continue;
    }
    if (marker.trim() !== agent) continue;
    try {
      await remove(dir);
      removed++;
    } catch (err) {
      log.error({ dir, err: (err as Error).message }, `failed to remove one of the ${what} left by an earlier run`);
    }
  }
  if (removed > 0) log.info({ count: removed }, `removed ${what} left by an earlier run of this agent`);
  return removed;
}
