/**
 * The main thread answers the backend's Pings (five missed and the backend fails every job of
 * the agent) and its timers; under load every CPU is busy with containers, the engine and the
 * pool threads. Pool threads lower themselves to nice 10 (workers/thread.ts); this raises the
 * main thread, and the threads started with it (V8's helpers, whose garbage collection the
 * main thread waits for), above the rest of the machine: nice -5 by default,
 * INGINIOUS_AGENT_MAIN_NICE to choose another value. Raising a priority needs CAP_SYS_NICE
 * (root has it); without it, the agent runs on at its present priority and says so.
 *
 * Call it before the ZeroMQ socket and the pool exist: threads inherit their creator's nice
 * value, so ZeroMQ's I/O thread gets it too, and pool threads start from it before lowering
 * themselves.
 */
import { readdirSync } from "node:fs";
import os from "node:os";

export const MAIN_THREAD_NICE = -5;
export const MAIN_NICE_ENV = "INGINIOUS_AGENT_MAIN_NICE";

export type PriorityChange =
  | { kind: "raised"; nice: number; threads: number }
  | { kind: "unchanged"; nice: number; reason: string };

/** The nice value asked for: INGINIOUS_AGENT_MAIN_NICE, or the default. Throws on a bad value. */
export function wantedNice(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[MAIN_NICE_ENV];
  if (raw === undefined || raw.trim() === "") return MAIN_THREAD_NICE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < -20 || n > 19) {
    throw new Error(`${MAIN_NICE_ENV} must be an integer from -20 to 19, got "${raw}"`);
  }
  return n;
}

function processThreads(): number[] {
  try {
    return readdirSync("/proc/self/task").map(Number).filter((t) => Number.isInteger(t) && t > 0);
  } catch {
    return [process.pid]; // not Linux: the calling thread only
  }
}

/** Gives the process's present threads the wanted nice value, when that raises them. */
export function raiseMainThreadPriority(nice: number): PriorityChange {
  const current = os.getPriority(0);
  if (nice >= current) return { kind: "unchanged", nice: current, reason: `already at nice ${current}` };
  try {
    os.setPriority(0, nice);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const why = code === "EACCES" || code === "EPERM" || /permission/i.test((err as Error).message)
      ? "raising a priority needs CAP_SYS_NICE" : (err as Error).message;
    return { kind: "unchanged", nice: current, reason: why };
  }
  let threads = 1;
  for (const tid of processThreads()) {
    if (tid === process.pid) continue;
    try {
      if (os.getPriority(tid) > nice) {
        os.setPriority(tid, nice);
        threads++;
      }
    } catch {
      // a thread that ended meanwhile
    }
  }
  return { kind: "raised", nice, threads };
}
