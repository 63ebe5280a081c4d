/**
 * What a job's worker left when it could not clean up (its pool thread died mid-job, or it did not
 * let go in time at a stop), removed from the main thread: its containers (those it recorded, and
 * every one the engine lists under the job's labels: a container whose create was in flight when
 * the thread died is known by its labels only), then its layered /task volume, its layer folder
 * and its job directory. The job's slot, memory and ports stay held until this settles (the
 * registry releases them after it): a container still running on the engine would otherwise share
 * its published ports and its memory with the job admitted in its place. Every call has its
 * deadline; the removal is tried again, with backoff, until the engine lists none of the job's
 * containers, for at most `boundMs`: then an error line says what is left, and the job's resources
 * are released anyway (the periodic check removes labelled containers no running job owns).
 */
import type Docker from "dockerode";
import { ENGINE_CALL_MS, withDeadline } from "../docker/deadline.js";
import { removeVolumeQuietly } from "../docker/engine.js";
import { LABEL_AGENT, LABEL_JOB } from "../docker/labels.js";
import type { Logger } from "../log.js";
import { removeJobDirectory } from "./job-directory.js";
import type { Job } from "./job.js";
import { jobLayerFolder } from "./layer-place.js";
import { taskVolumeName } from "./task-layer.js";

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 15_000;

export interface LeftoverPlace {
  docker: Docker;
  log: Logger;
  /** The agent's id (its containers' LABEL_AGENT). */
  agent: string;
  /** The agent's folder of jobs' layer folders (layer-place.ts), or null. */
  taskLayersDir: string | null;
}

/** Removes what the job's worker left; true when the engine confirmed its containers gone within `boundMs`. */
export async function removeLeftovers(place: LeftoverPlace, job: Job, boundMs: number): Promise<boolean> {
  const log = place.log.child({ job: job.id });
  const deadline = performance.now() + boundMs;
  let gone = false;
  let attempts = 0;
  for (let delay = RETRY_FIRST_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
    attempts++;
    const left = await removeContainersOnce(place, job, log);
    if (left.length === 0) {
      gone = true;
      break;
    }
    const wait = Math.min(delay, deadline - performance.now());
    if (wait <= 0) {
      log.error({ containers: left, attempts, ms: boundMs },
        "the engine did not let a dead worker's containers be removed in time: releasing the job's slot, memory and ports anyway (the periodic check removes what is left)");
      break;
    }
    if (attempts === 1) log.warn({ containers: left }, "a dead worker's containers are not removed yet: trying again; the job's slot, memory and ports stay held meanwhile");
    await new Promise((r) => setTimeout(r, wait));
  }
  if (gone && attempts > 1) log.info({ attempts }, "a dead worker's containers are removed");
  await removeVolumeQuietly(place.docker, taskVolumeName(job.jobDir), log);
  const layer = jobLayerFolder(place.taskLayersDir, job.jobDir);
  for (const dir of layer === null ? [job.jobDir] : [layer, job.jobDir]) {
    try {
      await removeJobDirectory(dir);
    } catch (err) {
      log.error({ dir, err: (err as Error).message }, "failed to remove job directory");
    }
  }
  return gone;
}

/**
 * One attempt: removes the job's recorded containers and those the engine lists under its labels;
 * returns the ids not known to be gone (the recorded ones if the engine could not be asked).
 */
async function removeContainersOnce(place: LeftoverPlace, job: Job, log: Logger): Promise<string[]> {
  const labels = [`${LABEL_AGENT}=${place.agent}`, `${LABEL_JOB}=${job.id}`];
  let listed: string[];
  try {
    const found = await withDeadline("list", ENGINE_CALL_MS, (abortSignal) =>
      place.docker.listContainers({ all: true, filters: { label: labels }, abortSignal } as Docker.ContainerListOptions));
    listed = found.map((c) => c.Id);
  } catch (err) {
    log.warn({ err: (err as Error).message }, "cannot list a dead worker's containers");
    listed = [];
  }
  const ids = [...new Set([...job.containers, ...listed])];
  const results = await Promise.all(ids.map(async (id) => ({ id, gone: await removeOne(place, id, log) })));
  const left = results.filter((r) => !r.gone).map((r) => r.id);
  for (const r of results) if (r.gone) job.containers.delete(r.id);
  return left;
}

/** Force-removes a container under a deadline; already gone is fine, removal in progress is not yet gone. */
async function removeOne(place: LeftoverPlace, id: string, log: Logger): Promise<boolean> {
  try {
    await withDeadline("remove", ENGINE_CALL_MS, (abortSignal) => place.docker.getContainer(id).remove({ force: true, v: true, abortSignal }));
    log.debug({ container: id }, "removed a dead worker's container");
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return true;
    log.warn({ container: id, err: (err as Error).message }, "failed to remove a dead worker's container");
    return false;
  }
}
