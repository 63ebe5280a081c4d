/**
 * The sweep that ends a shutdown, once no pool thread is left to make anything: what a job's
 * cleanup did not remove in time (a thread still at work when its job was ended, then stopped with
 * the pool) goes, as the start-up sweep removes what a killed run left (reaper.ts).
 */
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { removeLeftoverContainers, removeLeftoverJobDirectories, removeLeftoverVolumes } from "./reaper.js";
import { removeLeftoverLayerFolders } from "./task-folders.js";

export async function sweepAtShutdown(
  docker: Docker, agent: string, tmpdir: string, layers: { dir: string; image: string | null } | null, log: Logger,
): Promise<void> {
  const by = "this run's jobs at shutdown";
  try {
    await removeLeftoverContainers(docker, agent, log, by);
    await removeLeftoverVolumes(docker, agent, log, by);
  } catch (err) {
    log.error({ err: (err as Error).message }, "failed to list this agent's containers and volumes at shutdown");
  }
  await removeLeftoverJobDirectories(tmpdir, agent, log, undefined, undefined, by);
  if (layers !== null) await removeLeftoverLayerFolders(docker, layers.dir, { agent, image: layers.image }, log, by);
}
