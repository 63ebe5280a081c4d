/**
 * Engine calls per trivial job, by kind, for the agent and for the bench's own floor driver: a
 * phase of its own, after the others, so that the counting proxy's cost disturbs no throughput
 * or CPU figure. A counting pass-through (call-proxy.ts) listens on a unix socket of the run; a
 * second agent, started with DOCKER_HOST pointing at it (the agent's engine address, for its
 * main thread and its pool threads alike), runs a few warm-up jobs, then `--calls-jobs` trivial
 * jobs at 2x cores; the floor driver runs as many through a client of the same proxy. Each count
 * is the difference over the measured jobs only (the agent's start, its warm-up and its event
 * stream's opening fall outside), divided by the jobs; after a short settle on both sides, so
 * that the warm containers made for the next jobs are counted as often as those made before.
 */
import path from "node:path";
import Docker from "dockerode";
import { CallProxy, perJob } from "./call-proxy.js";
import { floorBatch } from "./floor.js";
import { log } from "./log.js";
import type { EngineCallFigures } from "./results.js";
import type { BenchRun } from "./session.js";
import { sleep } from "./stats.js";


/** The engine's unix socket, as the bench's own client reaches it; null for a TCP engine. */
function engineSocket(): string | null {
  const host = process.env["DOCKER_HOST"] ?? "";
  if (host === "") return "/var/run/docker.sock";
  return host.startsWith("unix://") ? host.slice("unix://".length) : null;
}

const total = (counts: Record<string, number>): number => Math.round(Object.values(counts).reduce((s, v) => s + v, 0) * 100) / 100;

export async function countEngineCalls(run: BenchRun, tmp: string): Promise<EngineCallFigures | null> {
  const n = run.opts.callsJobs;
  const socket = engineSocket();
  if (n === 0) return null;
  if (socket === null) {
    run.problems.push("engine calls not counted: DOCKER_HOST is not a unix socket");
    return null;
  }
  const c = Math.min(run.twoX, n);
  log(`engine calls: ${n} agent jobs and ${n} floor jobs at C=${c}, through a counting proxy`);
  const proxy = new CallProxy(path.join(tmp, "engine-calls.sock"), socket);
  await proxy.listen();
  try {
    const spare = await run.spareAgent("calls", { DOCKER_HOST: `unix://${proxy.path}` });
    let agent: Record<string, number>;
    try {
      await spare.jobs.trivial("calls-warm", 4, Math.min(4, c));
      await sleep(run.opts.settleMs);
      const a0 = proxy.snapshot();
      const recs = await spare.jobs.trivial("calls", n, c);
      await sleep(run.opts.settleMs);
      agent = perJob(a0, proxy.snapshot(), n);
      const failed = recs.filter((r) => !r.ok).length;
      if (failed > 0) run.problems.push(`${failed} of the engine-call phase's agent jobs failed`);
    } finally {
      await spare.stop();
    }
    const floorDocker = new Docker({ socketPath: proxy.path });
    const f0 = proxy.snapshot();
    await floorBatch({ ...run.floor, docker: floorDocker }, n, c);
    const floor = perJob(f0, proxy.snapshot(), n);
    log(`engine calls per job: agent ${total(agent)}, floor ${total(floor)}`);
    return { jobs: n, agent, agentTotal: total(agent), floor, floorTotal: total(floor) };
  } finally {
    await proxy.close();
  }
}
