/**
 * The few Docker calls the agent makes outside a job's own lifecycle, with the
 * engine's benign answers (304 already stopped, 404 gone, 409 in progress) handled by name.
 */
import Docker from "dockerode";
import type { Logger } from "../log.js";

export function connectDocker(): Docker {
  // dockerode reads DOCKER_HOST or uses /var/run/docker.sock
  return new Docker();
}

export function statusOf(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown })?.statusCode;
  return typeof code === "number" ? code : undefined;
}

/** Kills a container; "not running" and "no such container" are fine. Returns false on other errors. */
export async function killQuietly(docker: Docker, id: string, log: Logger): Promise<boolean> {
  try {
    log.debug({ container: id }, "killing container");
    await docker.getContainer(id).kill();
    log.debug({ container: id }, "killed container");
    return true;
  } catch (err) {
    const status = statusOf(err);
    if (status === 404 || status === 409 || status === 304) return true;
    log.warn({ container: id, err: (err as Error).message }, "failed to kill container");
    return false;
  }
}

/** Force-removes a container with its anonymous volumes; already gone or removal in progress are fine. */
export async function removeQuietly(docker: Docker, id: string, log: Logger): Promise<boolean> {
  try {
    log.debug({ container: id }, "removing container");
    await docker.getContainer(id).remove({ force: true, v: true });
    log.debug({ container: id }, "removed container");
    return true;
  } catch (err) {
    const status = statusOf(err);
    if (status === 404 || status === 409) return true;
    log.warn({ container: id, err: (err as Error).message }, "failed to remove container");
    return false;
  }
}
