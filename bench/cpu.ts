/**
 * CPU accounting: snapshots of the CPU time (from /proc) of the agent (all threads, and its main
 * thread alone), dockerd, containerd, the whole machine and the bench process, and the figures per
 * job between two snapshots or summed over several chunks. The kernel counts in 10 ms ticks, so
 * small runs are coarse.
 */
import type { CpuFigures } from "./results.js";
import { machineCpuMs, mainThreadCpuMs, pidsByName, processCpuMs } from "./proc.js";
import { now, round } from "./stats.js";

export interface CpuSnap {
  at: number;
  agent: number | null;
  agentMain: number | null;
  dockerd: number | null;
  containerd: number | null;
  machineBusy: number;
  bench: number;
}

export interface Daemons {
  dockerd: number[];
  containerd: number[];
}

function sumCpu(pids: number[]): number | null {
  if (pids.length === 0) return null;
  let total = 0;
  for (const pid of pids) {
    const v = processCpuMs(pid);
    if (v === null) return null;
    total += v;
  }
  return total;
}

export function cpuSnap(agentPid: number, d: Daemons): CpuSnap {
  return {
    at: now(),
    agent: processCpuMs(agentPid),
    agentMain: mainThreadCpuMs(agentPid),
    dockerd: sumCpu(d.dockerd),
    containerd: sumCpu(d.containerd),
    machineBusy: machineCpuMs().busy,
    bench: ((u) => (u.user + u.system) / 1000)(process.cpuUsage()),
  };
}

/** Adds up CPU deltas over several chunks. */
export class CpuSum {
  private wall = 0;
  private readonly sums: Record<"agent" | "agentMain" | "dockerd" | "containerd" | "machineBusy" | "bench", number | null> = {
    agent: 0, agentMain: 0, dockerd: 0, containerd: 0, machineBusy: 0, bench: 0,
  };
  add(a: CpuSnap, b: CpuSnap): void {
    this.wall += b.at - a.at;
    for (const k of Object.keys(this.sums) as Array<keyof CpuSum["sums"]>) {
      const x = a[k];
      const y = b[k];
      const cur = this.sums[k];
      this.sums[k] = cur === null || x === null || y === null ? null : cur + (y - x);
    }
  }
  figures(jobs: number): CpuFigures {
    const per = (v: number | null): number | null => (v === null || jobs === 0 ? null : round(v / jobs, 2));
    return {
      wallS: round(this.wall / 1000, 2)!, jobs,
      agentMsPerJob: per(this.sums.agent), agentMainMsPerJob: per(this.sums.agentMain),
      dockerdMsPerJob: per(this.sums.dockerd), containerdMsPerJob: per(this.sums.containerd),
      machineBusyMsPerJob: per(this.sums.machineBusy), benchMsPerJob: per(this.sums.bench),
    };
  }
}

export function cpuFigures(a: CpuSnap, b: CpuSnap, jobs: number): CpuFigures {
  const per = (x: number | null, y: number | null): number | null =>
    x === null || y === null || jobs === 0 ? null : round((y - x) / jobs, 2);
  return {
    wallS: round((b.at - a.at) / 1000, 2)!,
    jobs,
    agentMsPerJob: per(a.agent, b.agent),
    agentMainMsPerJob: per(a.agentMain, b.agentMain),
    dockerdMsPerJob: per(a.dockerd, b.dockerd),
    containerdMsPerJob: per(a.containerd, b.containerd),
    machineBusyMsPerJob: per(a.machineBusy, b.machineBusy),
    benchMsPerJob: per(a.bench, b.bench),
  };
}

/** The Docker daemons' processes, found by name; a daemon not found is a problem of the run (its CPU is not measured). */
export function findDaemons(problems: string[]): Daemons {
  const daemons: Daemons = { dockerd: pidsByName("dockerd"), containerd: pidsByName("containerd") };
  if (daemons.dockerd.length === 0) problems.push("no dockerd process found in /proc: its CPU is not measured");
  if (daemons.containerd.length === 0) problems.push("no containerd process found in /proc: its CPU is not measured");
  return daemons;
}

/** The agent's CPU per second between two snapshots (its idle cost), ms/s. */
export function agentMsPerS(a: CpuSnap, b: CpuSnap): number | null {
  return a.agent === null || b.agent === null ? null : round((b.agent - a.agent) / ((b.at - a.at) / 1000), 2);
}

/** Several runs' figures as one: each per-job figure weighted by its run's jobs. */
export function combinedCpuFigures(all: CpuFigures[]): CpuFigures {
  const jobs = all.reduce((s, x) => s + x.jobs, 0);
  const sum = (k: keyof CpuFigures): number | null =>
    all.some((x) => x[k] === null) ? null : round(all.reduce((s, x) => s + (x[k] as number) * x.jobs, 0) / jobs, 2);
  return {
    wallS: round(all.reduce((s, x) => s + x.wallS, 0), 2)!, jobs,
    agentMsPerJob: sum("agentMsPerJob"), agentMainMsPerJob: sum("agentMainMsPerJob"),
    dockerdMsPerJob: sum("dockerdMsPerJob"), containerdMsPerJob: sum("containerdMsPerJob"),
    machineBusyMsPerJob: sum("machineBusyMsPerJob"), benchMsPerJob: sum("benchMsPerJob"),
  };
}
