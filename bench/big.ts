/**
 * Main-thread health under big results: first the wire's own floor (one frame of a result's
 * size over ZeroMQ on loopback, the machine quiet), then 2x cores jobs at a time each returning
 * a big archive and a big stdout, while the wire thread pings every 100 ms. Measures the
 * Ping->Pong round trips (all, and those not queued behind a big result), the agent's event-loop
 * delay, its RSS (sampled every 100 ms) and CPU, checks each result's sizes and one result in
 * full, and reads the agent's RSS once it has settled.
 */
import type { AgentProc } from "./agent-proc.js";
import { cpuFigures, cpuSnap } from "./cpu.js";
import { fromAgent, runFigures } from "./figures.js";
import { log } from "./log.js";
import { loopDelayWindow } from "./loop-delay.js";
import { procStatus, type ProcStatus } from "./proc.js";
import type { BenchResults } from "./results.js";
import type { BenchRun } from "./session.js";
import { median, sleep, summarize } from "./stats.js";
import type { JobRecord } from "./wire-client.js";
import { frameTransferMs } from "./wire-floor.js";

export interface BigLoad {
  /** The JSON's `load`; its `phasesMs` is filled from the agent's log at the end of the run. */
  load: BenchResults["load"];
  records: JobRecord[];
  /** The agent's largest thread count under the load (0: not read). */
  threadsMax: number;
  /** The agent's RSS and threads once the load is over, settled. */
  afterStatus: ProcStatus | null;
}

export async function bigResults(run: BenchRun): Promise<BigLoad> {
  const { opts, agent, daemons, wire, twoX } = run;
  const wireFrameMs = summarize(await frameTransferMs(2 * opts.bigBytes), 1);
  log(`one ${Math.round((2 * opts.bigBytes) / 1048576)} MiB frame over ZeroMQ, machine quiet: p50 ${wireFrameMs.p50} ms`);
  log(`load: ${opts.bigJobs} jobs at C=${twoX}, each returning ${opts.bigBytes / 1048576} MiB archive + ${opts.bigBytes / 1048576} MiB stdout`);
  const sampler = sampleStatus(agent);
  await agent.loopWindow();
  const l0 = cpuSnap(agent.pid, daemons);
  const big = await run.jobs.big(opts.bigJobs, twoX, opts.bigBytes);
  const l1 = cpuSnap(agent.pid, daemons);
  const peak = sampler.stop();
  const loopDelayMs = await loopDelayWindow(agent, l0.at);
  const loadPongs = wire.pongsBetween(l0.at, l1.at);
  const verified = await wire.verifyKept();
  const bigOk = big.filter((j) => j.ok);
  const bigFig = runFigures([big.map(fromAgent)], twoX, cpuFigures(l0, l1, big.length));
  const wrong = bigOk.find((j) => !j.archiveIsGzip || j.archiveBytes < opts.bigBytes || j.stdoutBytes !== opts.bigBytes);
  if (wrong) run.problems.push(`big job ${wrong.id}: archive ${wrong.archiveBytes} B (gzip ${wrong.archiveIsGzip}), stdout ${wrong.stdoutBytes} B`);
  await sleep(opts.settleMs);
  const afterStatus = procStatus(agent.pid);
  const load: BenchResults["load"] = {
    c: twoX, jobs: big.length, failures: bigFig.failures, firstFailure: bigFig.firstFailure, jobsPerS: bigFig.jobsPerS,
    resultBytes: summarize(bigOk.map((j) => j.size), 0),
    archiveBytes: median(bigOk.map((j) => j.archiveBytes)), stdoutBytes: median(bigOk.map((j) => j.stdoutBytes)),
    latencyMs: bigFig.latencyMs, pongMs: summarize(loadPongs, 2),
    pongNotBehindBigMs: summarize(wire.pongsBetween(l0.at, l1.at, "notBehindBig"), 2),
    pongsBehindBig: wire.pongsBetween(l0.at, l1.at, "behindBig").length,
    wireFrameMs,
    loopDelayMs,
    rssMaxBytes: peak.rssMax || null, cpu: bigFig.cpu, phasesMs: {}, verified,
  };
  return { load, records: big, threadsMax: peak.threadsMax, afterStatus };
}

/** Reads the agent's RSS and thread count every 100 ms until stopped; returns the largest. */
function sampleStatus(agent: AgentProc): { stop(): { rssMax: number; threadsMax: number } } {
  let rssMax = 0;
  let threadsMax = 0;
  const sampler = setInterval(() => {
    const s = procStatus(agent.pid);
    if (s) {
      rssMax = Math.max(rssMax, s.rssBytes);
      threadsMax = Math.max(threadsMax, s.threads);
    }
  }, 100);
  return {
    stop: () => {
      clearInterval(sampler);
      return { rssMax, threadsMax };
    },
  };
}
