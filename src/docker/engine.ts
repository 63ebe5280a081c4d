/**
 * The few Docker calls the agent makes outside a job's own lifecycle, with the
 * engine's benign answers (304 already stopped, 404 gone, 409 in progress) handled by name.
 */
import http from "node:http";
import { inspect } from "node:util";
// before dockerode: what it would load and the agent does not use waits until called
import "./lazy-parts.js";
import Docker from "dockerode";
import type { Logger } from "../log.js";

/**
 * A client of the engine (DOCKER_HOST, or /var/run/docker.sock). Its connections are kept
 * alive and reused: a job makes a handful of short calls, and a fresh connection for each
 * costs more of the agent's CPU than the call itself. Streams (attach, wait, events) hold a
 * connection of their own while they last. Over TLS or ssh, dockerode's own handling stays in charge.
 */
export function connectDocker(): Docker {
  const host = process.env["DOCKER_HOST"] ?? "";
  const plain = host === "" || host.startsWith("unix://") || (host.startsWith("tcp://") && !process.env["DOCKER_TLS_VERIFY"]);
  if (!plain) return new Docker();
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 32 });
  // docker-modem formats each request's options with util.inspect (showHidden, no depth limit)
  // for its debug log, enabled or not: walking a live Agent and its sockets would cost more
  // than the request.
  Object.defineProperty(agent, inspect.custom, { value: () => "[docker keep-alive agent]" });
  return new Docker({ agent } as Docker.DockerOptions);
}

function statusOf(err: unknown): number | undefined {
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

/** Removes a volume; already gone is fine. Returns false on other errors (in use: its container is not gone yet). */
export async function removeVolumeQuietly(docker: Docker, name: string, log: Logger): Promise<boolean> {
  try {
    await docker.getVolume(name).remove();
    log.debug({ volume: name }, "removed volume");
    return true;
  } catch (err) {
    if (statusOf(err) === 404) return true;
    log.warn({ volume: name, err: (err as Error).message }, "failed to remove volume");
    return false;
  }
}
