/**
 * The figures of bench/heavy.ts for one way of giving a job its /task (copy or layered): job
 * preparation from the agent's own `job done` lines (its `prepare` phase: the job directory made,
 * the task copied or its overlay volume created; or a warm container adopted, its task copied),
 * latency and throughput from the bench's side, the mean cleanup from the agent's phase
 * histogram, and what each job's grader saw as its /task mount. Also the printed table.
 */
import type { AgentTimings } from "./figures.js";
import type { HeavyJob, Layering } from "./heavy-agent.js";
import { percentile, round } from "./stats.js";

/** One chunk of jobs: the jobs, and its time to its last result and to the agent's slots free again. */
export interface Chunk {
  jobs: HeavyJob[];
  resultsS: number;
  settledS: number;
}

export interface Spread {
  n: number;
  p50: number | null;
  p90: number | null;
  max: number | null;
}

export interface ModeFigures {
  jobs: number;
  /** Jobs that took a warm container (their phases have no `create`). */
  warmJobs: number;
  /** How many jobs saw each file system type at /task. */
  mounts: Record<string, number>;
  prepareMs: Spread;
  /** Medians of the agent's phases (prepare, create, start, run, collect). */
  phasesMs: Record<string, number | null>;
  latencyMs: Spread;
  /** Jobs over the chunks' time from first job sent to the agent's slots free again (cleanups included). */
  jobsPerS: number | null;
  /** Jobs over the chunks' time from first job sent to last result (cleanup of the last jobs left out). */
  resultsJobsPerS: number | null;
  /** Mean time of a job's cleanup (removal of its containers, volume and directory), from the agent's histogram. */
  cleanupMeanMs: number | null;
}

export function spread(values: readonly number[], digits = 1): Spread {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: round(percentile(s, 50), digits), p90: round(percentile(s, 90), digits), max: round(s[s.length - 1] ?? null, digits) };
}

function phaseMedians(all: Array<Record<string, number>>): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const k of ["prepare", "create", "start", "run", "collect"]) {
    const v = all.map((p) => p[k]).filter((x): x is number => typeof x === "number").sort((a, b) => a - b);
    out[k] = round(percentile(v, 50), 1);
  }
  return out;
}

export function modeFigures(chunks: Chunk[], timings: AgentTimings, cleanup: { seconds: number; count: number }): ModeFigures {
  const jobs = chunks.flatMap((c) => c.jobs);
  const phases = jobs.map((j) => timings.get(j.id)?.phases).filter((p): p is Record<string, number> => p !== undefined);
  if (phases.length !== jobs.length) throw new Error(`the agent's log has ${phases.length} "job done" lines for ${jobs.length} jobs`);
  const mounts: Record<string, number> = {};
  for (const j of jobs) mounts[j.mount ?? "unknown"] = (mounts[j.mount ?? "unknown"] ?? 0) + 1;
  const perS = (seconds: number): number | null => (seconds > 0 ? round(jobs.length / seconds, 3) : null);
  return {
    jobs: jobs.length,
    warmJobs: phases.filter((p) => typeof p["create"] !== "number").length,
    mounts,
    prepareMs: spread(phases.map((p) => p["prepare"]).filter((x): x is number => typeof x === "number")),
    phasesMs: phaseMedians(phases),
    latencyMs: spread(jobs.map((j) => j.doneAt - j.sentAt), 0),
    jobsPerS: perS(chunks.reduce((s, c) => s + c.settledS, 0)),
    resultsJobsPerS: perS(chunks.reduce((s, c) => s + c.resultsS, 0)),
    cleanupMeanMs: cleanup.count > 0 ? round((cleanup.seconds / cleanup.count) * 1000, 0) : null,
  };
}

/** A start-up check's choice in words, e.g. `layered (gauge 1)` or `copy: <reason> (gauge 0)`. */
export function layeringText(l: Layering): string {
  return `${l.mode ?? "no start-up line"}${l.reason !== null ? `: ${l.reason}` : ""} (task_folders_layered ${l.gauge ?? "?"})`;
}

export interface HeavySummary {
  header: string;
  copy: ModeFigures;
  layered: ModeFigures;
  layering: { copy: Layering; layered: Layering };
  throughputRatio: number | null;
  targets: Array<{ id: string; value: number | null; limit: string; met: boolean | null }>;
}

export function printTable(r: HeavySummary): void {
  const cell = (v: string | number | null): string => String(v ?? "-").padStart(12);
  const rows: Array<[string, (f: ModeFigures) => string | number | null]> = [
    ["prepare p50 (ms)", (f) => f.prepareMs.p50],
    ["prepare p90 (ms)", (f) => f.prepareMs.p90],
    ["run p50 (ms)", (f) => f.phasesMs["run"] ?? null],
    ["latency p50 (ms)", (f) => f.latencyMs.p50],
    ["latency p90 (ms)", (f) => f.latencyMs.p90],
    ["jobs/s", (f) => f.jobsPerS],
    ["jobs/s to results", (f) => f.resultsJobsPerS],
    ["cleanup mean (ms)", (f) => f.cleanupMeanMs],
    ["warm jobs", (f) => `${f.warmJobs}/${f.jobs}`],
    ["/task mounts", (f) => Object.entries(f.mounts).map(([k, n]) => `${k} ${n}`).join(", ")],
  ];
  const lines = [
    r.header,
    `copy agent: ${layeringText(r.layering.copy)}`,
    `layered agent: ${layeringText(r.layering.layered)}`,
    `${"".padEnd(20)}${cell("copy")}${cell("layered")}`,
    ...rows.map(([name, get]) => `${name.padEnd(20)}${cell(get(r.copy))}${cell(get(r.layered))}`),
    `throughput layered / copy: ${r.throughputRatio ?? "-"}`,
    ...r.targets.map((t) => `target ${t.id}: ${t.value ?? "-"} (${t.limit}) ${t.met === null ? "not measured" : t.met ? "met" : "MISSED"}`),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
