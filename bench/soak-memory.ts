/**
 * The soak's memory curve: at each sample, the agent's RSS and where it is (JS heaps of the main
 * isolate and of the pool threads, their external memory, and native: RSS minus those), read
 * through the agent's stats file (SIGUSR2, src/memory-report.ts) and /proc; and the summary of
 * where the growth after the warm-up (job 500) lives, with the 5 % check.
 */
import type { AgentProc } from "./agent-proc.js";
import { procStatus } from "./proc.js";

const mb = (bytes: number): number => Math.round(bytes / 104857.6) / 10;

/** One reading, in MB. Native is RSS minus every heap's committed size and every external. */
export interface MemorySample {
  jobs: number;
  rssMb: number;
  /** Threads of the agent process (/proc), and pool threads that answered. */
  threads: number;
  poolThreads: number;
  mainHeapUsedMb: number;
  mainHeapTotalMb: number;
  mainExternalMb: number;
  mainArrayBuffersMb: number;
  poolHeapUsedMb: number;
  poolHeapTotalMb: number;
  poolExternalMb: number;
  poolArrayBuffersMb: number;
  nativeMb: number;
  /** V8's young and old generations, main and pool threads together (parts of the heaps' totals). */
  newSpaceMb: number;
  oldSpaceMb: number;
  perThread: Array<{ threadId: number; heapUsedMb: number; heapTotalMb: number; externalMb: number; newSpaceMb: number }>;
}

/** The parts RSS is split into, as named in the summary. */
const PARTS = ["mainHeapTotalMb", "mainExternalMb", "poolHeapTotalMb", "poolExternalMb", "nativeMb"] as const;
type Part = (typeof PARTS)[number];

export async function memorySample(agent: AgentProc, jobs: number): Promise<MemorySample | null> {
  const snap = await agent.loopWindow();
  const st = procStatus(agent.pid);
  if (!snap?.memory || !st) return null;
  const { main, threads } = snap.memory;
  const sum = (k: "heapUsed" | "heapTotal" | "external" | "arrayBuffers" | "newSpace" | "oldSpace"): number => threads.reduce((n, t) => n + t[k], 0);
  const known = main.heapTotal + main.external + sum("heapTotal") + sum("external");
  return {
    jobs, rssMb: mb(snap.rss), threads: st.threads, poolThreads: threads.length,
    mainHeapUsedMb: mb(main.heapUsed), mainHeapTotalMb: mb(main.heapTotal),
    mainExternalMb: mb(main.external), mainArrayBuffersMb: mb(main.arrayBuffers),
    poolHeapUsedMb: mb(sum("heapUsed")), poolHeapTotalMb: mb(sum("heapTotal")),
    poolExternalMb: mb(sum("external")), poolArrayBuffersMb: mb(sum("arrayBuffers")),
    nativeMb: mb(snap.rss - known),
    newSpaceMb: mb(main.newSpace + sum("newSpace")), oldSpaceMb: mb(main.oldSpace + sum("oldSpace")),
    perThread: threads.map((t) => ({
      threadId: t.threadId, heapUsedMb: mb(t.heapUsed), heapTotalMb: mb(t.heapTotal), externalMb: mb(t.external), newSpaceMb: mb(t.newSpace),
    })),
  };
}

/** Samples taken one after the other while the jobs go on, each printed as it comes. */
export class MemoryCurve {
  readonly samples: MemorySample[] = [];
  private chain = Promise.resolve();

  constructor(private readonly agent: AgentProc, private readonly jobs: number) {}

  sample(done: number, wrong: number): void {
    this.chain = this.chain.then(async () => {
      const m = await memorySample(this.agent, done);
      if (m === null) return;
      this.samples.push(m);
      const external = Math.round((m.mainExternalMb + m.poolExternalMb) * 10) / 10;
      process.stdout.write(`${done}/${this.jobs} jobs, agent RSS ${m.rssMb} MB (heaps main ${m.mainHeapTotalMb} ` +
        `pool ${m.poolHeapTotalMb} [${m.poolThreads} threads], used ${Math.round((m.mainHeapUsedMb + m.poolHeapUsedMb) * 10) / 10}, ` +
        `new space ${m.newSpaceMb}, external ${external}, native ${m.nativeMb}), ${wrong} wrong\n`);
    });
  }

  async finished(): Promise<void> {
    await this.chain;
    this.samples.sort((a, b) => a.jobs - b.jobs);
  }
}

/** Least-squares slope of y over x, per 1,000 x. */
function slopePerThousand(points: Array<[number, number]>): number | null {
  if (points.length < 3) return null;
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  const sxy = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  return sxx === 0 ? null : Math.round((sxy / sxx) * 1000 * 10) / 10;
}

export interface GrowthSummary {
  /** The sample growth is measured from (job 500, or half the run when shorter) and the last. */
  fromJobs: number;
  toJobs: number;
  rssFromMb: number;
  rssToMb: number;
  /** last / from, and the highest sample after `from` / from. */
  growth: number;
  peakGrowth: number;
  limit: number;
  pass: boolean;
  /** MB each part gained from `from` to the last sample (RSS = the sum). */
  byPart: Record<Part | "rssMb", number>;
  /** Least-squares MB per 1,000 jobs over the second half of the run: what still grows at the end. */
  slopeSecondHalf: Record<Part | "rssMb", number | null>;
  /** One line: where the growth lives. */
  text: string;
}

export function growthSummary(samples: MemorySample[], jobs: number, limit = 1.05): GrowthSummary | null {
  const from = samples.find((s) => s.jobs >= Math.min(500, jobs / 2));
  const to = samples.at(-1);
  if (!from || !to || to === from) return null;
  const after = samples.filter((s) => s.jobs >= from.jobs);
  const half = samples.filter((s) => s.jobs >= jobs / 2);
  const keys = ["rssMb", ...PARTS] as const;
  const byPart = Object.fromEntries(keys.map((k) => [k, Math.round((to[k] - from[k]) * 10) / 10])) as GrowthSummary["byPart"];
  const slopeSecondHalf = Object.fromEntries(keys.map((k) => [k, slopePerThousand(half.map((s) => [s.jobs, s[k]]))])) as GrowthSummary["slopeSecondHalf"];
  const growth = Math.round((to.rssMb / from.rssMb) * 1000) / 1000;
  const peakGrowth = Math.round((Math.max(...after.map((s) => s.rssMb)) / from.rssMb) * 1000) / 1000;
  const parts = [...PARTS].sort((a, b) => Math.abs(byPart[b]) - Math.abs(byPart[a]))
    .map((k) => `${k.replace(/Mb$/, "")} ${byPart[k] >= 0 ? "+" : ""}${byPart[k]}`).join(", ");
  const text = `RSS ${from.rssMb} MB at job ${from.jobs} -> ${to.rssMb} MB at job ${to.jobs} ` +
    `(${((growth - 1) * 100).toFixed(1)} %, peak ${((peakGrowth - 1) * 100).toFixed(1)} %; limit ${((limit - 1) * 100).toFixed(0)} %): ` +
    `${parts} MB; RSS slope over the second half ${slopeSecondHalf.rssMb ?? "?"} MB per 1,000 jobs`;
  return {
    fromJobs: from.jobs, toJobs: to.jobs, rssFromMb: from.rssMb, rssToMb: to.rssMb, growth, peakGrowth, limit,
    pass: growth <= limit, byPart, slopeSecondHalf, text,
  };
}
