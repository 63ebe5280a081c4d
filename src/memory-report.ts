/**
 * Where the agent's memory is, on request: the JS heap and external memory of the main isolate
 * and of each pool thread's isolate. Only when `INGINIOUS_AGENT_STATS` is set (the bench's soak
 * reads it through SIGUSR2, see loop-monitor.ts): each pool thread then listens on one
 * BroadcastChannel and answers a query with its own figures; the main thread asks and gathers
 * whatever threads answer, so threads that start or stop between two queries are simply
 * counted or not. Without the variable nothing listens and nothing is asked. When node runs
 * with --expose-gc (a diagnosis, never in service), each isolate collects its garbage first, so
 * that heapUsed is what it really keeps.
 */
import v8 from "node:v8";
import { BroadcastChannel, threadId } from "node:worker_threads";

const CHANNEL = "inginious-agent-memory";
const ASK = "memory?";

/** One isolate's figures, in bytes (process.memoryUsage() of that isolate, RSS aside). */
export interface HeapFigures {
  heapUsed: number;
  heapTotal: number;
  /** C++ memory bound to this isolate's JS objects, arrayBuffers included. */
  external: number;
  arrayBuffers: number;
  /** Committed size of V8's young generation (new_space) and old generation (old_space), part of heapTotal. */
  newSpace: number;
  oldSpace: number;
  /** V8's limit on this isolate's heap (for a pool thread: its resourceLimits, see POOL_THREAD_OLD_HEAP_MB in config.ts). */
  heapLimit: number;
}

export interface ThreadHeap extends HeapFigures {
  threadId: number;
}

/** What SIGUSR2 adds to the stats file: the main isolate and the pool threads that answered. */
export interface MemoryBreakdown {
  main: HeapFigures;
  threads: ThreadHeap[];
}

export function statsRequested(): boolean {
  return (process.env["INGINIOUS_AGENT_STATS"] ?? "") !== "";
}

function heapFigures(): HeapFigures {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  const space = (name: string): number => v8.getHeapSpaceStatistics().find((s) => s.space_name === name)?.space_size ?? 0;
  return {
    heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers,
    newSpace: space("new_space"), oldSpace: space("old_space"),
    heapLimit: v8.getHeapStatistics().heap_size_limit,
  };
}

/** In a pool thread: answer the main thread's queries (only when stats are requested). */
export function answerMemoryQueries(): void {
  if (!statsRequested()) return;
  const channel = new BroadcastChannel(CHANNEL);
  channel.unref(); // the pool ends the thread; this channel must not hold it
  channel.onmessage = (event) => {
    if ((event as { data: unknown }).data !== ASK) return; // another thread's answer
    channel.postMessage({ threadId, ...heapFigures() } satisfies ThreadHeap);
  };
}

/**
 * In the main thread: the main isolate's figures and those of the pool threads that answer
 * within `waitMs`; returns as soon as `expected()` threads have answered.
 */
export function askMemory(expected: () => number, waitMs = 1000): Promise<MemoryBreakdown> {
  const channel = new BroadcastChannel(CHANNEL);
  const threads = new Map<number, ThreadHeap>();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      channel.close();
      resolve({ main: heapFigures(), threads: [...threads.values()].sort((a, b) => a.threadId - b.threadId) });
    };
    const timer = setTimeout(done, waitMs);
    channel.onmessage = (event) => {
      const t = (event as { data: unknown }).data as ThreadHeap | string;
      if (typeof t !== "object" || t === null || typeof t.threadId !== "number") return;
      threads.set(t.threadId, t);
      if (threads.size >= expected()) done();
    };
    channel.postMessage(ASK);
    if (expected() === 0) done();
  });
}
