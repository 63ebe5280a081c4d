/**
 * From the phases' measurements to bench/results/*.json: the agent's own timings put beside
 * the levels and the load, the memory figures (RSS idle, after warm-up, after the leak check,
 * under and after the load; growth and slope), the targets and whether each is met, the
 * failures noted as problems, and, once the run is cleaned up, the `meta` block (versions,
 * commit, the agent's command line, options, duration).
 */
import os from "node:os";
import type { BigLoad } from "./big.js";
import { gitState } from "./engine.js";
import { medianPhases, type AgentTimings } from "./figures.js";
import type { IdleFigures } from "./idle.js";
import type { LeakFigures } from "./leak.js";
import { addAgentTimings, type Levels } from "./levels.js";
import type { FolderCost } from "./folder-cost.js";
import type { BenchResults, EngineCallFigures, JobFolderFigures, LevelFigures, Target } from "./results.js";
import type { BenchRun, Session } from "./session.js";
import { median, now, round, rssSlopeKbPerJob, summarize } from "./stats.js";

export interface Measured {
  idle: IdleFigures;
  levels: Levels;
  leak: LeakFigures;
  big: BigLoad;
  timings: AgentTimings;
  calls: EngineCallFigures | null;
  folder: FolderCost;
}

export type Figures = Omit<BenchResults, "meta">;

/** Every figure but `meta`; failed jobs and the wire's problems are added to the run's problems. */
export function collectFigures(run: BenchRun, m: Measured): Figures {
  const { idle, levels, leak, big, timings, calls } = m;
  addAgentTimings(levels, timings);
  big.load.phasesMs = medianPhases(big.records.map((r) => timings.get(r.id)).filter((x) => x !== undefined).map((x) => x.phases));
  const pongAll = summarize(run.opts.levels.length > 0 ? run.wire.pongsBetween(idle.t0, levels.t1) : [], 2);
  run.problems.push(...run.wire.problems);
  const levelFigures = levels.levels.map((l) => l.figures);
  const memory = memoryFigures(run, m);
  const targets = targetsOf(run, levelFigures, memory, m);
  const fails = levelFigures.reduce((s, l) => s + l.floor.failures + l.agent.failures, 0);
  if (fails > 0) run.problems.push(`${fails} trivial jobs failed during the levels (see levels[].*.firstFailure)`);
  if (big.load.failures > 0) run.problems.push(`${big.load.failures} big jobs failed: ${big.load.firstFailure}`);
  return {
    levels: levelFigures,
    load: big.load,
    idleLoopDelayMs: idle.loopDelayMs,
    memory,
    cpu: { ...leak.cpu, agentIdleMsPerS: idle.agentIdleMsPerS, byThread: leak.byThread, jobFolder: jobFolder(m) },
    engineCalls: calls,
    pongAllLevelsMs: pongAll,
    targets,
    problems: run.problems,
  };
}

/** The folder's cost beside the agent's CPU per job, and the agent's prepare phase over the CPU figures' jobs. */
function jobFolder({ folder, leak, timings }: Measured): JobFolderFigures {
  const agentMs = leak.cpu.agentMsPerJob;
  const prepare = leak.ids.map((id) => timings.get(id)?.phases["prepare"]).filter((v): v is number => typeof v === "number");
  return {
    ...folder,
    shareOfAgentCpu: agentMs === null || agentMs <= 0 ? null : round((folder.prepareCpuMs + folder.removeCpuMs) / agentMs, 3),
    agentPrepareMs: round(median(prepare), 1),
  };
}

function memoryFigures(run: BenchRun, { idle, leak, big }: Measured): BenchResults["memory"] {
  const idleStatus = run.idleStatus;
  const warmStatus = idle.status;
  const leakStatus = leak.status;
  return {
    idleBytes: idleStatus?.rssBytes ?? null,
    idleAfterWarmupBytes: warmStatus?.rssBytes ?? null,
    afterLeakJobsBytes: leakStatus?.rssBytes ?? null,
    leakJobs: leak.jobs,
    growthRatio: warmStatus && leakStatus ? round(leakStatus.rssBytes / warmStatus.rssBytes, 4) : null,
    slopeKbPerJob: rssSlopeKbPerJob(leak.curve),
    underLoadMaxBytes: big.load.rssMaxBytes,
    afterLoadBytes: big.afterStatus?.rssBytes ?? null,
    leakCurve: [...leak.curve, ...(leakStatus ? [{ jobs: leak.jobs, rssBytes: leakStatus.rssBytes }] : [])],
    threads: {
      idle: idleStatus?.threads ?? null, afterWarmup: warmStatus?.threads ?? null,
      afterLeakJobs: leakStatus?.threads ?? null, underLoadMax: big.threadsMax || null,
    },
  };
}

function targetsOf(run: BenchRun, levels: LevelFigures[], memory: BenchResults["memory"], { leak, big }: Measured): Target[] {
  const { twoX } = run;
  const at2x = levels.find((l) => l.c === twoX) ?? null;
  const at1 = levels.find((l) => l.c === 1) ?? null;
  const target = (id: string, description: string, value: number | null, op: "<=" | ">=", limit: number, unit: string): Target => ({
    id, description, value, op, limit, unit,
    met: value === null ? null : op === "<=" ? value <= limit : value >= limit,
  });
  return [
    target("throughput", `throughput / floor at C=${twoX} (2x cores)`, at2x?.ratio ?? null, ">=", 0.95, "x"),
    target("cpu", "agent CPU per trivial job (all threads)", leak.cpu.agentMsPerJob, "<=", 10, "ms"),
    target("latency", "agent-added p50 latency at C=1", at1?.addedP50Ms ?? null, "<=", 30, "ms"),
    target("pong", "Ping->Pong p99 under big results", big.load.pongMs.p99, "<=", 20, "ms"),
    target("loop", "event-loop delay p99 under big results", big.load.loopDelayMs?.p99 ?? null, "<=", 20, "ms"),
    target("rss", `RSS growth after ${leak.jobs} trivial jobs`, memory.growthRatio === null ? null : round((memory.growthRatio - 1) * 100, 1), "<=", 10, "%"),
  ];
}

/** The whole results: `meta` (taken after the cleanup, so that the duration counts it) and the figures. */
export function withMeta(session: Session, run: BenchRun, figures: Figures): BenchResults {
  const { opts, engine } = session;
  const { out: _out, ...optionsWithoutOut } = opts;
  return {
    meta: {
      startedAt: session.startedAt, durationS: round((now() - session.started) / 1000, 1)!, quick: opts.quick, host: os.hostname(),
      cores: session.cores, node: process.version, dockerVersion: engine.dockerVersion, cgroupVersion: engine.cgroupVersion,
      ...gitState(), agentConcurrency: run.maxC, poolThreads: opts.poolThreads,
      jobsPerLevel: opts.jobs, agentNodeArgs: process.env["BENCH_AGENT_NODE_ARGS"] ?? "", agentArgs: session.agentArgs,
      options: optionsWithoutOut, foreignContainers: session.foreign.count(),
    },
    ...figures,
  };
}
