/**
 * The leak check and the CPU per job: the rest of the trivial jobs (`--leak-jobs`, the levels'
 * agent jobs included) at C = 2x cores, reading the agent's RSS about every tenth of them (the
 * leak curve) and the CPU of the agent, dockerd, containerd and the machine over them. The time
 * budget (`--budget-min`) cuts it short on a slow machine, as a problem of the run. With no jobs
 * left to run, the CPU figures are those of the levels' agent runs combined. Ends with the
 * agent's RSS once it has settled.
 */
import { combinedCpuFigures, cpuFigures, cpuSnap } from "./cpu.js";
import type { IdleFigures } from "./idle.js";
import type { Levels } from "./levels.js";
import { log } from "./log.js";
import { procStatus, type ProcStatus } from "./proc.js";
import type { CpuFigures } from "./results.js";
import type { BenchRun } from "./session.js";
import { now, sleep } from "./stats.js";
import { ThreadSampler, type ThreadCpu } from "./threads.js";
import type { JobRecord } from "./wire-client.js";

export interface LeakFigures {
  /** CPU per trivial job, and the concurrency it was measured at. */
  cpu: CpuFigures & { c: number };
  /** The same CPU by thread (main, pool, the rest); null without leak-check jobs of its own. */
  byThread: ThreadCpu | null;
  /** The leak-check jobs' ids, to find their timings in the agent's log. */
  ids: string[];
  /** RSS while the jobs ran: from the idle-after-warm-up reading, jobs counted from there. */
  curve: Array<{ jobs: number; rssBytes: number }>;
  /** The agent's RSS and threads after the jobs, settled. */
  status: ProcStatus | null;
  /** Trivial jobs the agent ran since warm-up (levels included). */
  jobs: number;
}

export async function leakCheck(run: BenchRun, idle: IdleFigures, levels: Levels): Promise<LeakFigures> {
  const { opts, agent, jobs } = run;
  const fillJobs = Math.max(0, opts.leakJobs - jobs.trivialDone);
  const curve: Array<{ jobs: number; rssBytes: number }> = [];
  if (idle.status) curve.push({ jobs: 0, rssBytes: idle.status.rssBytes });
  const cpuC = Math.min(run.twoX, run.maxC);
  let cpuFig: CpuFigures;
  let fillRecords: JobRecord[] = [];
  let byThread: ThreadCpu | null = null;
  if (fillJobs > 0) {
    ({ cpuFig, fillRecords, byThread } = await fill(run, fillJobs, cpuC, curve));
  } else {
    // no fill: CPU over the levels' agent runs
    cpuFig = combinedCpuFigures(levels.levels.map((l) => l.figures.agent.cpu));
  }
  const leakFailures = fillRecords.filter((r) => !r.ok);
  if (leakFailures.length > 0) run.problems.push(`${leakFailures.length} leak-check jobs failed, e.g. ${leakFailures[0]!.result}: ${leakFailures[0]!.text}`);
  await sleep(opts.settleMs);
  const status = procStatus(agent.pid);
  log(`after ${jobs.trivialDone} trivial jobs: RSS ${((status?.rssBytes ?? 0) / 1048576).toFixed(1)} MB`);
  return { cpu: { ...cpuFig, c: cpuC }, byThread, ids: fillRecords.map((r) => r.id), curve, status, jobs: jobs.trivialDone };
}

/** Runs `fillJobs` trivial jobs at C = `cpuC`, adding to `curve` as they go, until done or out of time. */
async function fill(
  run: BenchRun, fillJobs: number, cpuC: number, curve: Array<{ jobs: number; rssBytes: number }>,
): Promise<{ cpuFig: CpuFigures; fillRecords: JobRecord[]; byThread: ThreadCpu }> {
  const { opts, agent, daemons, jobs } = run;
  log(`leak check: ${fillJobs} more trivial jobs at C=${cpuC} (${jobs.trivialDone} done so far)`);
  const threads = new ThreadSampler(agent.pid);
  threads.start();
  const c0 = cpuSnap(agent.pid, daemons);
  const before = jobs.trivialDone;
  const step = Math.max(1, Math.round(opts.leakJobs / 10));
  // leave about two minutes of the budget for the big load and the end
  const deadline = run.started + (opts.budgetMin - 2) * 60_000;
  const fillRecords = await jobs.trivial("leak", fillJobs, cpuC, (done) => {
    const total = before + done;
    if (total % step === 0) {
      const st = procStatus(agent.pid);
      if (st) curve.push({ jobs: total, rssBytes: st.rssBytes });
    }
  }, () => now() > deadline);
  const c1 = cpuSnap(agent.pid, daemons);
  const byThread = threads.stop(fillRecords.length);
  const cpuFig = cpuFigures(c0, c1, fillRecords.length);
  if (fillRecords.length < fillJobs) {
    run.problems.push(`time budget (--budget-min ${opts.budgetMin}): the leak check stopped after ${before + fillRecords.length} ` +
      `trivial jobs instead of ${opts.leakJobs} (the machine is slow or busy)`);
    log(`time budget reached: leak check cut at ${before + fillRecords.length} jobs`);
  }
  return { cpuFig, fillRecords, byThread };
}
