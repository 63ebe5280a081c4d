/**
 * Counting failed Docker calls: a hook on a dockerode client's modem (every API call goes
 * through `modem.dial`) reports each failed call as `METHOD /path/with/{id}` and a status
 * (the HTTP status, or the socket error code such as ENOENT or ECONNREFUSED).
 *
 * Worker threads have their own clients: they report on a BroadcastChannel that the main
 * thread listens to (`relayDockerError` in a worker, `listenForDockerErrors` on the main thread).
 * The same hook gives each call's options a short inspection: docker-modem would format them in
 * full for a debug log that is off.
 */
import { inspect } from "node:util";
import { BroadcastChannel } from "node:worker_threads";
import type Docker from "dockerode";

export interface DockerErrorReport {
  /** e.g. `POST /containers/{id}/kill` */
  call: string;
  /** e.g. `404`, `ECONNREFUSED`, `error` */
  status: string;
}

export const DOCKER_ERROR_CHANNEL = "inginious-agent-docker:docker-errors";

/** Path segments after a resource that are calls of their own, not an id. */
const TOP_LEVEL: Record<string, ReadonlySet<string>> = {
  containers: new Set(["json", "create", "prune"]),
  images: new Set(["json", "create", "load", "search", "prune", "get"]),
  networks: new Set(["create", "prune"]),
  volumes: new Set(["create", "prune"]),
  plugins: new Set(["privileges", "pull", "create"]),
  services: new Set(["create"]),
  secrets: new Set(["create"]),
  configs: new Set(["create"]),
  swarm: new Set(["init", "join", "leave", "update", "unlockkey", "unlock"]),
  system: new Set(["df"]),
};

/** Last path segments that name a call on one object (`/containers/{id}/kill`). */
const ACTIONS: ReadonlySet<string> = new Set([
  "json", "top", "logs", "changes", "export", "stats", "resize", "start", "stop", "restart", "kill", "update",
  "rename", "pause", "unpause", "attach", "wait", "archive", "exec", "history", "push", "tag", "get",
  "connect", "disconnect",
]);

/** A bounded name for a call: ids and image names become `{id}`, the query is dropped. */
export function callName(method: string | undefined, rawPath: string | undefined): string {
  const verb = (method ?? "GET").toUpperCase();
  let p = (rawPath ?? "/").split("?")[0]!.replace(/^\/v\d+(\.\d+)?(?=\/)/, "");
  const segs = p.split("/").filter((s) => s !== "");
  if (segs.length === 0) return `${verb} /`;
  const [resource, ...rest] = segs as [string, ...string[]];
  if (rest.length === 0) p = `/${resource}`;
  else if (rest.length === 1) p = TOP_LEVEL[resource]?.has(rest[0]!) ? `/${resource}/${rest[0]}` : `/${resource}/{id}`;
  else {
    const last = rest[rest.length - 1]!;
    p = ACTIONS.has(last) ? `/${resource}/{id}/${last}` : `/${resource}/{id}`;
  }
  return `${verb} ${p}`;
}

/** The status label of a failed call. */
export function errorStatus(err: unknown): string {
  const e = err as { statusCode?: unknown; code?: unknown; message?: unknown } | null;
  if (typeof e?.statusCode === "number") return String(e.statusCode);
  if (typeof e?.code === "string" && /^[A-Z_0-9]+$/.test(e.code)) return e.code;
  if (typeof e?.message === "string" && /timeout/i.test(e.message)) return "timeout";
  return "error";
}

type Dial = (options: { method?: string; path?: string }, callback?: (err: unknown, data: unknown) => void) => unknown;
const HOOKED = Symbol.for("inginious-agent-docker.docker-errors");

/** Makes `client` report every failed call to `onError`. Idempotent; returns the same client. */
export function instrumentDocker(client: Docker, onError: (report: DockerErrorReport) => void): Docker {
  const modem = (client as unknown as { modem: { dial: Dial; [HOOKED]?: boolean } }).modem;
  if (modem[HOOKED]) return client;
  const dial = modem.dial.bind(modem);
  modem.dial = (options, callback) => {
    // docker-modem formats every request's options for its debug log, enabled or not, hidden
    // properties and all (the call's AbortSignal, the container's spec): a tenth of a
    // millisecond a call, when a name is all a log would need.
    Object.defineProperty(options, inspect.custom, { value: () => `[${options.method ?? "GET"} ${options.path ?? ""}]`, configurable: true });
    if (typeof callback !== "function") return dial(options, callback);
    return dial(options, (err, data) => {
      if (err) {
        try {
          onError({ call: callName(options.method, options.path), status: errorStatus(err) });
        } catch {
          /* counting must never break a call */
        }
      }
      callback(err, data);
    });
  };
  modem[HOOKED] = true;
  return client;
}

let relayChannel: BroadcastChannel | null = null;

/** For worker threads: sends a report to the main thread's listener (see listenForDockerErrors). */
export function relayDockerError(report: DockerErrorReport): void {
  if (relayChannel === null) {
    relayChannel = new BroadcastChannel(DOCKER_ERROR_CHANNEL);
    relayChannel.unref();
  }
  relayChannel.postMessage(report);
}

/** On the main thread: calls `onError` for each report a worker relays. Returns a function that stops listening. */
export function listenForDockerErrors(onError: (report: DockerErrorReport) => void): () => void {
  const channel = new BroadcastChannel(DOCKER_ERROR_CHANNEL);
  channel.onmessage = (event: unknown) => {
    const data = (event as { data?: unknown }).data as Partial<DockerErrorReport> | undefined;
    if (typeof data?.call === "string" && typeof data.status === "string") onError({ call: data.call, status: data.status });
  };
  channel.unref();
  return () => channel.close();
}
