/**
 * Figures of a run of jobs: throughput in steady state (results received while C jobs were in
 * flight), makespan throughput, latency percentiles and failures, from the floor's or the
 * agent's records made into one shape (Rec); how a level's jobs split into alternating chunks;
 * and medians of per-phase timings, the floor's own or the agent's (read from its `job done`
 * log lines).
 */
import type { AgentProc } from "./agent-proc.js";
import type { FloorJob } from "./floor.js";
import type { CpuFigures, RunFigures } from "./results.js";
import { median, round, summarize } from "./stats.js";
import type { JobRecord } from "./wire-client.js";

export interface Rec {
  ok: boolean;
  start: number;
  end: number;
  error: string | null;
}

/** Figures of a run made of chunks (each chunk: jobs run `c` at a time from an empty start). */
export function runFigures(chunks: Rec[][], c: number, cpu: CpuFigures): RunFigures {
  const records = chunks.flat();
  const ok = records.filter((r) => r.ok);
  let makespan = 0;
  let steadyJobs = 0;
  let steadyTime = 0;
  for (const chunk of chunks) {
    if (chunk.length === 0) continue;
    const first = Math.min(...chunk.map((r) => r.start));
    const lastStart = Math.max(...chunk.map((r) => r.start));
    const lastEnd = Math.max(...chunk.map((r) => r.end));
    makespan += lastEnd - first;
    const inWindow = chunk.filter((r) => r.ok && r.end <= lastStart).length;
    if (chunk.length > c && inWindow > 0) {
      steadyJobs += inWindow;
      steadyTime += lastStart - first;
    } else {
      // every job started at once: no steady state to measure, use the makespan
      steadyJobs += chunk.filter((r) => r.ok).length;
      steadyTime += lastEnd - first;
    }
  }
  return {
    jobs: records.length,
    failures: records.length - ok.length,
    firstFailure: records.find((r) => !r.ok)?.error ?? null,
    makespanS: round(makespan / 1000, 2)!,
    jobsPerS: round(steadyJobs / (steadyTime / 1000), 3)!,
    makespanJobsPerS: round(ok.length / (makespan / 1000), 3)!,
    latencyMs: summarize(ok.map((r) => r.end - r.start), 1),
    cpu,
  };
}

/** `n` split into `k` near-equal positive parts. */
export function split(n: number, k: number): number[] {
  const parts = Math.max(1, Math.min(k, n));
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

export const fromAgent = (j: JobRecord): Rec => ({ ok: j.ok, start: j.sentAt, end: j.doneAt, error: j.ok ? null : `${j.result}: ${j.text}` });
export const fromFloor = (j: FloorJob): Rec => ({ ok: j.ok, start: j.startAt, end: j.endAt, error: j.error });

export function medianPhases(items: Array<Record<string, number>>): Record<string, number | null> {
  const keys = new Set(items.flatMap((p) => Object.keys(p)));
  const out: Record<string, number | null> = {};
  for (const k of keys) out[k] = round(median(items.map((p) => p[k]).filter((v): v is number => typeof v === "number")), 1);
  return out;
}


/** The agent's own view of each job, by job id: its `job done` log lines (arrival to result sent, and the phases). */
export type AgentTimings = Map<string, { ms: number; phases: Record<string, number> }>;

export async function agentTimings(agent: AgentProc): Promise<AgentTimings> {
  const timings: AgentTimings = new Map();
  for (const l of await agent.readLog()) {
    if (l.msg === "job done" && typeof l["job"] === "string") {
      timings.set(l["job"], { ms: Number(l["ms"]), phases: (l["phases"] ?? {}) as Record<string, number> });
    }
  }
  return timings;
}
