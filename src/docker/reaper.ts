/**
 * Removes what an earlier run of this same agent left: its labelled containers and volumes, its
 * job directories and their layer folders. The same sweep ends a shutdown, once the pool threads
 * are gone (agent.ts): whatever a job's cleanup did not remove in time is removed then, so that a
 * stopped agent leaves nothing, not even what a slow thread made after the main thread's cleanup.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JOB_DIR_MARKER, JOB_DIR_PREFIX, removeJobDirectory } from "../jobs/job-directory.js";
import { removeQuietly, removeVolumeQuietly } from "./engine.js";
import { LABEL_AGENT } from "./labels.js";

/** Whose leftovers a sweep removes, as its log lines say it. */
export type LeftBy = "an earlier run of this agent" | "this run's jobs at shutdown";

/** A killed run leaves things as a matter of course; a shutdown that finds some had a cleanup that did not end in time. */
function levelFor(by: LeftBy): "info" | "warn" {
  return by === "an earlier run of this agent" ? "info" : "warn";
}

export async function removeLeftoverContainers(docker: Docker, agent: string, log: Logger, by: LeftBy = "an earlier run of this agent"): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agent}`] } });
  await Promise.all(list.map((c) => removeQuietly(docker, c.Id, log)));
  if (list.length > 0) log[levelFor(by)]({ count: list.length }, `removed containers left by ${by}`);
  return list.length;
}

/** The layered /task volumes (jobs/task-layer.ts) of its jobs: after its containers, which held them. */
export async function removeLeftoverVolumes(docker: Docker, agent: string, log: Logger, by: LeftBy = "an earlier run of this agent"): Promise<number> {
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL_AGENT}=${agent}`] } });
  const list = Volumes ?? [];
  await Promise.all(list.map((v) => removeVolumeQuietly(docker, v.Name, log)));
  if (list.length > 0) log[levelFor(by)]({ count: list.length }, `removed volumes left by ${by}`);
  return list.length;
}

/**
 * Only directories named job-* that carry this agent's marker are touched: never --tmpdir itself.
 * The same for the jobs' layer folders (jobs/layer-place.ts), with their own `what` and `remove`.
 */
export async function removeLeftoverJobDirectories(
  tmpdir: string, agent: string, log: Logger, what = "job directories", remove: (dir: string) => Promise<void> = removeJobDirectory,
  by: LeftBy = "an earlier run of this agent",
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
      log.error({ dir, err: (err as Error).message }, `failed to remove one of the ${what} left by ${by}`);
    }
  }
  if (removed > 0) log[levelFor(by)]({ count: removed }, `removed ${what} left by ${by}`);
  return removed;
}
