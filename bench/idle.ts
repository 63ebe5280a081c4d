/**
 * Warm-up and the idle window. A few unmeasured jobs go first, through the floor and through
 * the agent, so that neither is measured cold; then, with nothing running, the agent's idle cost:
 * its event-loop delay over the window, its CPU per second (timers, the 50 ms loop monitor) and
 * its RSS after warm-up, the reference of the leak check, which counts trivial jobs from here.
 */
import { agentMsPerS, cpuSnap } from "./cpu.js";
import { floorBatch } from "./floor.js";
import { log } from "./log.js";
import { loopDelayWindow } from "./loop-delay.js";
import { procStatus, type ProcStatus } from "./proc.js";
import type { LoopDelay } from "./results.js";
import type { BenchRun } from "./session.js";
import { now, sleep } from "./stats.js";

export interface IdleFigures {
  /** When the idle window opened: Pongs from here on count in pongAllLevelsMs. */
  t0: number;
  loopDelayMs: LoopDelay | null;
  /** The agent's RSS and threads at the end of the window (idle after warm-up). */
  status: ProcStatus | null;
  agentIdleMsPerS: number | null;
}

export async function warmUpAndIdle(run: BenchRun): Promise<IdleFigures> {
  const { opts, agent, daemons, jobs } = run;
  if (opts.warmup > 0) {
    log(`warm-up: ${opts.warmup} floor jobs and ${opts.warmup} agent jobs`);
    await floorBatch(run.floor, opts.warmup, Math.min(opts.warmup, run.twoX));
    await jobs.trivial("warm", opts.warmup, Math.min(opts.warmup, run.twoX));
  }
  jobs.trivialDone = 0; // the leak check counts jobs from the idle-after-warm-up reading
  const t0 = now();
  await agent.loopWindow();
  const cpu0 = cpuSnap(agent.pid, daemons);
  await sleep(opts.settleMs);
  const cpu1 = cpuSnap(agent.pid, daemons);
  const loopDelayMs = await loopDelayWindow(agent, t0);
  const status = procStatus(agent.pid);
  log(`idle after warm-up: RSS ${((status?.rssBytes ?? 0) / 1048576).toFixed(1)} MB`);
  return { t0, loopDelayMs, status, agentIdleMsPerS: agentMsPerS(cpu0, cpu1) };
}
