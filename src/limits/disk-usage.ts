/**
 * Disk a job has written: the blocks allocated under its directory and under its containers'
 * writable layers (overlay2 UpperDir). Measured by walking the trees (sparse files count for what
 * they really use); the walk stops as soon as the budget is passed.
 *
 * Why polling: on this kind of host (overlay2 on ext4) the engine cannot cap a container's
 * writable layer (`--storage-opt size` needs xfs with project quotas), and INGInious's frontend
 * sends `limits.disk` that its own agent ignores. A poll every 250 ms costs one tree walk (small
 * for a job's few files) and lets a fast writer go about a quarter of a second of its write speed
 * past the limit before it is killed.
 */
import { promises as fs } from "node:fs";
import path from "node:path";

/** Bytes allocated under `roots`, stopping early once over `stopAbove`. Missing roots count 0. */
export async function diskUsage(roots: readonly string[], stopAbove = Number.POSITIVE_INFINITY): Promise<number> {
  let total = 0;
  const stack: string[] = [...roots];
  while (stack.length > 0 && total <= stopAbove) {
    const batch = stack.splice(0, 64);
    await Promise.all(batch.map(async (p) => {
      let st;
      try {
        st = await fs.lstat(p);
      } catch {
        return; // vanished meanwhile
      }
      total += st.blocks * 512;
      if (st.isDirectory()) {
        try {
          for (const name of await fs.readdir(p)) stack.push(path.join(p, name));
        } catch {
          /* unreadable: counted as what we saw */
        }
      }
    }));
  }
  return total;
}

export interface DiskWatch {
  readonly exceeded: boolean;
  /** Largest usage seen, in bytes. */
  readonly peakBytes: number;
  stop(): void;
}

/** A poll that failed: only `roots()` or `onExceeded` can throw (the walk itself skips what it cannot read). */
function warnPollFailed(err: Error): void {
  process.emitWarning(`disk usage poll failed: ${err.message}`);
}

/**
 * Polls the usage of `roots()` every `periodMs`; calls `onExceeded` once when over `limitBytes`.
 * A poll that throws is reported to `onError` and the next poll runs as usual.
 */
export function watchDisk(
  roots: () => string[],
  limitBytes: number,
  onExceeded: (bytes: number) => void,
  periodMs = 250,
  onError: (err: Error) => void = warnPollFailed,
): DiskWatch {
  let exceeded = false;
  let peak = 0;
  let busy = false;
  const poll = async (): Promise<void> => {
    const bytes = await diskUsage(roots(), limitBytes);
    peak = Math.max(peak, bytes);
    if (bytes > limitBytes && !exceeded) {
      exceeded = true;
      onExceeded(bytes);
    }
  };
  const timer = setInterval(() => {
    if (busy || exceeded) return;
    busy = true;
    poll()
      .catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => (busy = false));
  }, periodMs);
  timer.unref();
  return {
    get exceeded() {
      return exceeded;
    },
    get peakBytes() {
      return peak;
    },
    stop: () => clearInterval(timer),
  };
}
