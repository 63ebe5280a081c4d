/**
 * The levels: at each concurrency C, the same number of trivial jobs through the Docker floor
 * and through the agent, in alternating chunks (floor/agent, then agent/floor: ABBA), so that
 * drift and other load on the machine hit both alike. Per level: throughput, latency, CPU per
 * job for each, the Pongs during the agent's chunks, the foreign containers meanwhile, and the
 * agent's ratio and added p50 against the floor. The agent's own per-phase timings come from
 * its log at the end of the run (addAgentTimings).
 */
import { CpuSum, cpuSnap } from "./cpu.js";
import { floorBatch, type FloorJob } from "./floor.js";
import { fromAgent, fromFloor, medianPhases, runFigures, split, type AgentTimings } from "./figures.js";
import { log } from "./log.js";
import type { LevelFigures } from "./results.js";
import type { BenchRun } from "./session.js";
import { median, now, round, summarize } from "./stats.js";
import type { JobRecord } from "./wire-client.js";

export interface Level {
  figures: LevelFigures;
  /** The agent's jobs at this level, to find their timings in its log. */
  agentRecords: JobRecord[];
}

export interface Levels {
  levels: Level[];
  /** When the last level ended. */
  t1: number;
}

export async function measureLevels(run: BenchRun): Promise<Levels> {
  const levels: Level[] = [];
  for (const c of run.opts.levels) levels.push(await measureLevel(run, c));
  return { levels, t1: now() };
}

async function measureLevel(run: BenchRun, c: number): Promise<Level> {
  const { opts, agent, daemons, wire, foreign } = run;
  const levelT0 = now();
  const floorChunks: FloorJob[][] = [];
  const agentChunks: JobRecord[][] = [];
  const floorCpu = new CpuSum();
  const agentCpu = new CpuSum();
  const chunks = split(opts.jobs, opts.rounds);
  log(`C=${c}: ${opts.jobs} floor jobs and ${opts.jobs} agent jobs, in ${chunks.length} alternating chunk(s)`);
  for (const [r, n] of chunks.entries()) {
    const order = r % 2 === 0 ? ["floor", "agent"] : ["agent", "floor"];
    for (const who of order) {
      const x0 = cpuSnap(agent.pid, daemons);
      if (who === "floor") floorChunks.push(await floorBatch(run.floor, n, c));
      else agentChunks.push(await run.jobs.trivial(`L${c}`, n, c));
      (who === "floor" ? floorCpu : agentCpu).add(x0, cpuSnap(agent.pid, daemons));
    }
  }
  const levelT1 = now();
  const floorFig = runFigures(floorChunks.map((ch) => ch.map(fromFloor)), c, floorCpu.figures(opts.jobs));
  const agentFig = runFigures(agentChunks.map((ch) => ch.map(fromAgent)), c, agentCpu.figures(opts.jobs));
  const pongs = agentChunks.flatMap((ch) => wire.pongsBetween(Math.min(...ch.map((j) => j.sentAt)), Math.max(...ch.map((j) => j.doneAt))));
  const figures: LevelFigures = {
    c,
    floor: { ...floorFig, phasesMs: medianPhases(floorChunks.flat().filter((j) => j.ok).map((j) => j.phases)) },
    agent: {
      ...agentFig, pongMs: summarize(pongs, 2), foreignContainers: foreign.count(levelT0, levelT1),
      phasesMs: {}, agentTotalMs: null,
    },
    ratio: round(agentFig.jobsPerS / floorFig.jobsPerS, 3),
    addedP50Ms: agentFig.latencyMs.p50 === null || floorFig.latencyMs.p50 === null ? null
      : round(agentFig.latencyMs.p50 - floorFig.latencyMs.p50, 1),
  };
  log(`C=${c}: floor ${floorFig.jobsPerS} j/s p50 ${floorFig.latencyMs.p50} ms; agent ${agentFig.jobsPerS} j/s p50 ${agentFig.latencyMs.p50} ms` +
    `${floorFig.failures + agentFig.failures > 0 ? `; failures floor ${floorFig.failures} agent ${agentFig.failures}` : ""}` +
    `; ${foreign.count(levelT0, levelT1)} foreign containers meanwhile`);
  return { figures, agentRecords: agentChunks.flat() };
}

/** Each level's medians of the agent's own timings (its `job done` log lines) for its jobs. */
export function addAgentTimings(levels: Levels, timings: AgentTimings): void {
  for (const { figures, agentRecords } of levels.levels) {
    const recs = agentRecords.map((r) => timings.get(r.id)).filter((x) => x !== undefined);
    figures.agent.phasesMs = medianPhases(recs.map((x) => x.phases));
    figures.agent.agentTotalMs = round(median(recs.map((x) => x.ms)), 1);
  }
}
