/**
 * Disk a job has written: the blocks allocated under its directory and under its containers'
 * writable layers (overlay2 UpperDir). Measured by walking the trees (sparse files count for what
 * they really use, a file with several hard links once); the walk stops as soon as the budget is
 * passed.
 *
 * Why polling: on this kind of host (overlay2 on ext4) the engine cannot cap a container's
 * writable layer (`--storage-opt size` needs xfs with project quotas), and INGInious's frontend
 * sends `limits.disk` (1,024 MB unless the task says otherwise) that its own agent ignores;
 * `--disable-disk-limit` makes this agent ignore it too. The walk's own time sets the pace: the
 * next one starts after max(250 ms, 10 x the last walk), so a job of a few files is looked at
 * four times a second (a fast writer gets about a quarter of a second of its write speed past the
 * limit) while a job of 100,000 files costs at most about a tenth of one core.
 */
import { lstatSync, readdirSync } from "node:fs";
import path from "node:path";

/** Shortest pause between two walks. */
export const DISK_POLL_BASE_MS = 250;
/** Pause after a walk, as a multiple of the walk's own time. */
export const DISK_POLL_FACTOR = 10;

/** How long to wait before the next walk, given how long the last one took. */
export function nextDiskPollMs(walkMs: number, baseMs = DISK_POLL_BASE_MS, factor = DISK_POLL_FACTOR): number {
  return Math.max(baseMs, Math.ceil(factor * walkMs));
}

/**
 * Entries the walk looks at between two turns of the event loop. The walk's system calls are
 * synchronous (a pool thread runs several jobs: each slice holds the others for about a
 * millisecond at most on a local disk), because a promise and a trip through libuv's threadpool
 * for every lstat and readdir cost the agent more CPU than the calls themselves: the walks of a
 * small job, four times a second, were most of a trivial job's CPU.
 */
export const DISK_WALK_SLICE = 256;

/**
 * Bytes allocated under `roots`, stopping early once over `stopAbove`. Missing roots count 0.
 * A file with several hard links counts once (by device and inode; inode numbers above 2^53,
 * which no common filesystem hands out, could be confused).
 */
export async function diskUsage(roots: readonly string[], stopAbove = Number.POSITIVE_INFINITY): Promise<number> {
  let total = 0;
  const linked = new Set<string>();
  const stack: string[] = [...roots];
  let seen = 0;
  while (stack.length > 0 && total <= stopAbove) {
    const p = stack.pop()!;
    if (++seen % DISK_WALK_SLICE === 0) await new Promise((r) => setImmediate(r));
    let st;
    try {
      st = lstatSync(p, { throwIfNoEntry: false });
    } catch {
      st = undefined; // unreadable: not counted
    }
    if (st === undefined) continue; // vanished meanwhile
    if (st.nlink > 1 && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (linked.has(key)) continue;
      linked.add(key);
    }
    total += st.blocks * 512;
    if (st.isDirectory()) {
      try {
        for (const name of readdirSync(p)) stack.push(path.join(p, name));
      } catch {
        /* unreadable: counted as what we saw */
      }
    }
  }
  return total;
}

export interface DiskWatch {
  readonly exceeded: boolean;
  /** Largest usage seen, in bytes. */
  readonly peakBytes: number;
  stop(): void;
}

export interface DiskWatchOptions {
  baseMs?: number;
  /** The walk (tests give their own). */
  usage?: typeof diskUsage;
  /** Milliseconds, for timing walks (tests give their own). */
  now?: () => number;
  /** Told of a walk (or an `onExceeded`) that threw; the next walk runs as usual. */
  onError?: (err: Error) => void;
}

function warnPollFailed(err: Error): void {
  process.emitWarning(`disk usage poll failed: ${err.message}`);
}

/**
 * Walks `roots()` again and again, paced by nextDiskPollMs (the first walk after `baseMs`);
 * calls `onExceeded` once when over `limitBytes`, then stops. A walk that throws is reported to
 * `onError` and the next one runs as usual.
 */
export function watchDisk(
  roots: () => string[],
  limitBytes: number,
  onExceeded: (bytes: number) => void,
  { baseMs = DISK_POLL_BASE_MS, usage = diskUsage, now = () => performance.now(), onError = warnPollFailed }: DiskWatchOptions = {},
): DiskWatch {
  let exceeded = false;
  let stopped = false;
  let peak = 0;
  let timer: NodeJS.Timeout | null = null;
  const schedule = (ms: number): void => {
    if (stopped || exceeded) return;
    timer = setTimeout(poll, ms);
    timer.unref();
  };
  const poll = (): void => {
    const started = now();
    Promise.resolve()
      .then(() => usage(roots(), limitBytes))
      .then((bytes) => {
        peak = Math.max(peak, bytes);
        if (bytes > limitBytes && !exceeded && !stopped) {
          exceeded = true;
          onExceeded(bytes);
        }
      })
      .catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => schedule(nextDiskPollMs(now() - started, baseMs)));
  };
  schedule(baseMs);
  return {
    get exceeded() {
      return exceeded;
    },
    get peakBytes() {
      return peak;
    },
    stop: () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
  };
}
