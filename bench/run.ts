/**
 * `npm run bench`: measures the agent against the Docker floor in one run, phase after phase:
 *
 *   1. Docker floor: the trivial job straight through dockerode, at each concurrency (levels.ts).
 *   2. The real agent process (driven by a ROUTER playing the backend, pinging every 100 ms):
 *      throughput, end-to-end latency and agent-added latency at each concurrency (levels.ts).
 *   3. Main-thread health while 2x cores jobs return 20 MB archives and 20 MB of stdout:
 *      Ping->Pong round trip and the agent's own event-loop delay (big.ts).
 *   4. Memory: RSS idle, after warm-up, after 1,000 trivial jobs, under the load of 3 (idle.ts, leak.ts).
 *   5. CPU per job: the agent (all threads, and by thread), dockerd, containerd (cpu.ts, threads.ts, leak.ts).
 *   6. Engine calls per job by kind, for a second agent and the floor, through a counting proxy
 *      (calls.ts); the cost of a job's folder, in this process (folder-cost.ts).
 *
 * Writes bench/results/<timestamp>.json, latest.json and latest.svg, prints a table (report.ts).
 * See bench/README.md for the flags, what each figure means and which module measures it.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bigResults } from "./big.js";
import { countEngineCalls } from "./calls.js";
import { folderCost } from "./folder-cost.js";
import { preflight } from "./engine.js";
import { agentTimings } from "./figures.js";
import { warmUpAndIdle } from "./idle.js";
import { leakCheck } from "./leak.js";
import { measureLevels } from "./levels.js";
import { log } from "./log.js";
import { parseOptions, USAGE, type Options } from "./options.js";
import { writeResults } from "./report.js";
import { Session, startClock } from "./session.js";
import { collectFigures, withMeta } from "./summary.js";

/** Job folders made to measure their cost. */
const FOLDERS = 200;

/** Exit status: 0 the run completed, 1 it failed, 2 bad flags, 3 `--strict` and a target missed. */
export async function main(argv: string[]): Promise<number> {
  const opts = options(argv);
  if (opts === null) return 2;
  const clock = startClock();
  const engine = await preflight();
  if (engine === null) return 1;
  const session = new Session(opts, engine, clock);
  try {
    const run = await session.start(); //            the backend's wire, the agent, its hello
    const idle = await warmUpAndIdle(run); //        warm-up, then the agent idle
    const levels = await measureLevels(run); //      floor and agent at each concurrency
    const leak = await leakCheck(run, idle, levels); // the rest of the trivial jobs: RSS, CPU per job
    const big = await bigResults(run); //            the main thread under big results
    const calls = await countEngineCalls(run, run.tmp); // engine calls per job: a second agent, through a counting proxy
    const folder = folderCost(FOLDERS); //            a job folder's cost, in this process
    const timings = await agentTimings(run.agent); // the agent's own view of each job, from its log
    const figures = collectFigures(run, { idle, levels, leak, big, timings, calls, folder });
    await session.cleanup();
    const results = withMeta(session, run, figures);
    writeResults(opts.out, session.runId, results);
    return opts.strict && results.targets.some((t) => t.met === false) ? 3 : 0;
  } catch (err) {
    if (session.stopping) log("interrupted");
    else process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  } finally {
    await session.cleanup();
  }
}

/** The options, or null after printing what is wrong and the usage. */
function options(argv: string[]): Options | null {
  try {
    return parseOptions(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return null;
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const code = await main(process.argv.slice(2));
  // dockerode's keep-alive sockets must not hold the process open
  setTimeout(() => process.exit(code), 100).unref();
  process.exitCode = code;
}
