/**
 * The agent's configuration and the pure parsers behind each command-line value.
 * Each parser throws ConfigValueError with a sentence naming what it expects.
 */
import os from "node:os";

export class ConfigValueError extends Error {}

export interface RuntimeSpec {
  /** Docker runtime name, e.g. runc. */
  runtime: string;
  /** INGInious environment type, e.g. docker. */
  envtype: string;
  runAsRoot: boolean;
  /** Containers share the host kernel (not VMs). */
  shared: boolean;
  gpu: boolean;
}

export interface PortRange {
  begin: number;
  end: number;
}

export interface AgentConfig {
  backend: string;
  friendlyName: string;
  debugHost: string | null;
  debugPorts: PortRange;
  tmpdir: string;
  tasks: string;
  concurrency: number;
  verbose: boolean;
  debugmode: boolean;
  autorestart: boolean;
  ssh: boolean;
  runtimes: RuntimeSpec[] | null;
  poolThreads: number;
  /** Seconds a pool thread with no work waits before it ends; absent: DEFAULT_POOL_IDLE_SECONDS. */
  poolIdleSeconds?: number;
  pidsLimit: number;
  /** Student containers one job may run at once; more wait for one to end. Default DEFAULT_STUDENT_CONTAINERS. */
  studentContainers?: number;
  /** Warm grading containers kept per environment (0: none). */
  warm: number;
  /** MB of the host's memory left to the system and the agent, never reserved by jobs; null or absent: see defaultReserveMb. */
  memoryReserveMb?: number | null;
  /** Where logs go: 1 (stdout) for the daemon, 2 (stderr) for `grade`. */
  logDestination?: number;
  /** Port of the HTTP server for /metrics and /healthz; null or absent: no server. 0: any free port (logged). */
  metricsPort?: number | null;
  /** Address that server binds. */
  metricsHost?: string;
  /** Enforce each job's `limits.disk` (absent: yes); false ignores it, as INGInious's own agent does. */
  diskLimit?: boolean;
  /** Copy task folders into job directories even where the engine can layer them (--copy-task-folders). */
  copyTaskFolders?: boolean;
  /** The folder jobs' writable layers are made on (--task-layers-dir); absent: /dev/shm when it is a tmpfs, else job directories. */
  taskLayersDir?: string | null;
}

export const DEFAULT_DEBUG_PORTS = "64120-64130";
export const DEFAULT_PIDS_LIMIT = 1024;
export const DEFAULT_STUDENT_CONTAINERS = 4;
export const DEFAULT_WARM = 2;
/**
 * A pool thread costs 12-25 MB while it lives, and starting one again adds about 0.2 s to the
 * first job after a pause on 2 busy cores (1.5 s when they are saturated; bench/pool-idle.ts). A minute keeps the threads of a farm whose jobs come in bursts
 * (a class, an exam, a deadline) between its jobs, and gives the memory back once the host is idle.
 */
export const DEFAULT_POOL_IDLE_SECONDS = 60;
export const DEFAULT_METRICS_HOST = "127.0.0.1";
/**
 * V8's limits on each pool thread's heap (piscina's resourceLimits), MB: a thread that goes over
 * ends (ERR_WORKER_OUT_OF_MEMORY) and its jobs end as `crash`, where without them a thread could
 * grow to V8's default (4 GB here, per thread) outside memory admission. A pool thread's heap is
 * small, whatever its jobs return: results, archives and the jobs' input stay bytes outside it.
 * Measured with one pool thread for several jobs (2026-12-07): 4 results of 20 MiB archive +
 * 20 MiB stdout at once (bench/run.js --pool-threads 1 --big-jobs 8), the hostile bench (a 900
 * MiB archive; results of 48 Mi empty maps) and 3 results of 100,000 problems at once all went
 * through with a 64 MB old generation (and 3 of 100,000 problems with 16 MB). 256 MB leaves four
 * times that. The young generation is where a flood of small messages
 * lands first: with 16 MB, a 100,000-request flood raised RSS by 24 MB (12 with 8 MB, 39 with the
 * default; test/student-flood.test.ts).
 */
export const POOL_THREAD_OLD_HEAP_MB = 256;
export const POOL_THREAD_YOUNG_HEAP_MB = 16;

export function defaultConcurrency(): number {
  return 2 * os.availableParallelism();
}

export function parsePositiveInt(value: string, what = "a positive integer"): number {
  if (!/^\s*\d+\s*$/.test(value)) throw new ConfigValueError(`expected ${what}, got ${JSON.stringify(value)}`);
  const n = parseInt(value, 10);
  if (n <= 0 || !Number.isSafeInteger(n)) throw new ConfigValueError(`expected ${what}, got ${JSON.stringify(value)}`);
  return n;
}

/** A flag's environment variable: 1/true/yes/on, or 0/false/no/off/empty. */
export function parseNonNegativeInt(value: string, what = "a whole number, 0 or more"): number {
  if (!/^\s*\d+\s*$/.test(value)) throw new ConfigValueError(`expected ${what}, got ${JSON.stringify(value)}`);
  const n = parseInt(value, 10);
  if (!Number.isSafeInteger(n)) throw new ConfigValueError(`expected ${what}, got ${JSON.stringify(value)}`);
  return n;
}

export function parseEnvBoolean(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off", ""].includes(v)) return false;
  throw new ConfigValueError(`expected 1, true, yes, on, or 0, false, no, off, got ${JSON.stringify(value)}`);
}

/** A TCP port to listen on, 0 to 65535 (0: any free port). */
export function parseListenPort(value: string): number {
  if (!/^\s*\d+\s*$/.test(value) || parseInt(value, 10) > 65535) {
    throw new ConfigValueError(`expected a TCP port between 0 and 65535, got ${JSON.stringify(value)}`);
  }
  return parseInt(value, 10);
}

/** `begin-end`, both TCP ports; reversed bounds are swapped, as INGInious does. */
export function parsePortRange(value: string): PortRange {
  const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(value);
  if (!m) throw new ConfigValueError(`expected a port range begin-end such as 64120-64130, got ${JSON.stringify(value)}`);
  let begin = parseInt(m[1]!, 10);
  let end = parseInt(m[2]!, 10);
  if (begin > end) [begin, end] = [end, begin];
  if (begin < 1 || end > 65535) throw new ConfigValueError(`expected ports between 1 and 65535, got ${JSON.stringify(value)}`);
  return { begin, end };
}

/** tcp://host:port, tcp://[v6]:port, ipc://path (ZeroMQ endpoints the agent can connect to). */
export function parseBackendAddress(value: string): string {
  const tcp = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d+)$/.exec(value);
  if (tcp) {
    const port = parseInt(tcp[2]!, 10);
    if (port < 1 || port > 65535) throw new ConfigValueError(`expected a TCP port between 1 and 65535 in ${JSON.stringify(value)}`);
    return value;
  }
  if (/^ipc:\/\/.+$/.test(value)) return value;
  throw new ConfigValueError(
    `expected protocol://host:port, e.g. tcp://127.0.0.1:2001, tcp://[::1]:2001 or ipc:///path, got ${JSON.stringify(value)}`,
  );
}

/** `NAME ENVTYPE [root] [shared]`. */
export function parseRuntime(words: string[]): RuntimeSpec {
  if (words.length < 2) {
    throw new ConfigValueError(`expected RUNTIME ENVTYPE [root] [shared], got ${JSON.stringify(words.join(" "))}`);
  }
  const [runtime, envtype, ...flags] = words as [string, string, ...string[]];
  let runAsRoot = false;
  let shared = false;
  for (const flag of flags) {
    if (flag === "root") runAsRoot = true;
    else if (flag === "shared") shared = true;
    else throw new ConfigValueError(`unknown runtime flag ${JSON.stringify(flag)} (expected root or shared)`);
  }
  return { runtime, envtype, runAsRoot, shared, gpu: /nvidia/.test(runtime) };
}

/**
 * Groups the words after each `--runtime` (until the next option) — commander merges
 * repeated variadic options into one list, which loses the boundaries.
 */
export function groupRuntimeArgs(argv: readonly string[]): string[][] {
  const groups: string[][] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word !== "--runtime" && !word.startsWith("--runtime=")) continue;
    const group: string[] = word.startsWith("--runtime=") ? [word.slice("--runtime=".length)] : [];
    while (i + 1 < argv.length && !argv[i + 1]!.startsWith("-")) group.push(argv[++i]!);
    groups.push(group);
  }
  return groups;
}
