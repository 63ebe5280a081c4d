/**
 * The bench's command line and the fixed things it runs against: where the repository, the
 * agent's CLI and the bench's tasks are, the two images, and the options parsed from argv
 * (`--quick` sets small defaults; `--help` prints the usage). A bad flag throws UsageError,
 * which the entry point turns into exit status 2. Nothing here touches Docker or the agent.
 */
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository: this file runs as dist/bench/options.js. */
export const REPO = path.resolve(HERE, "../..");
export const CLI = path.join(REPO, "dist/src/cli.js");
export const TASKS = path.join(REPO, "bench/tasks");
export const SAMPLE_IMAGE = "inginious-agent-docker/sample:latest";
export const RAW_IMAGE = "inginious-agent-docker-test/test-raw:latest";
export const COURSE = "bench";

export interface Options {
  jobs: number;
  levels: number[];
  leakJobs: number;
  bigJobs: number;
  bigBytes: number;
  warmup: number;
  rounds: number;
  poolThreads: number;
  /** Extra arguments for the agent's command line. */
  agentArgs: string[];
  settleMs: number;
  out: string;
  strict: boolean;
  quick: boolean;
  saveAgentLog: boolean;
  /** Trivial jobs of the engine-call count (0: no count). */
  callsJobs: number;
  /** Minutes after which the leak-check jobs stop early (a busy machine must not make the run endless). */
  budgetMin: number;
}

export const USAGE = `usage: node dist/bench/run.js [options]   (npm run bench -- [options])
  --jobs N          trivial jobs per concurrency level, for the floor and for the agent (default 40)
  --levels LIST     concurrency levels, comma-separated (default 1,cores,2xcores,4xcores)
  --leak-jobs N     trivial jobs the agent runs before the leak check, levels included (default 1000)
  --big-jobs N      jobs returning a big result during the main-thread health check (default 16)
  --big-mb N        size of the big archive's data and of the big stdout, MiB (default 20)
  --warmup N        warm-up jobs before measuring, for the floor and for the agent (default 4)
  --calls-jobs N    trivial jobs of the engine-call count, for a second agent and for the floor (default 40; 0: none)
  --rounds N        each level's jobs run in N alternating chunks, floor/agent then agent/floor (default 2)
  --pool-threads N  the agent's --pool-threads (default 2x cores)
  --agent-args=STR  more arguments for the agent, split on spaces (e.g. --agent-args="--warm 0")
  --out DIR         where results go (default bench/results)
  --quick           a tiny run for tests: --jobs 2 --leak-jobs 12 --big-jobs 2 --big-mb 20 --warmup 1 --calls-jobs 4
  --strict          exit with status 3 when a target is missed
  --budget-min N    time budget: the leak-check jobs stop early when the run has taken N minutes,
                    minus about 2 for the rest (default 12; the JSON says how many ran)
  --save-agent-log  keep the agent's log (and anything node printed) as OUT/<run>.agent.log
  -h, --help        this help
env BENCH_AGENT_NODE_ARGS: extra node flags for the agent process (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")`;

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      jobs: { type: "string" },
      levels: { type: "string" },
      "leak-jobs": { type: "string" },
      "big-jobs": { type: "string" },
      "big-mb": { type: "string" },
      warmup: { type: "string" },
      rounds: { type: "string" },
      "calls-jobs": { type: "string" },
      "pool-threads": { type: "string" },
      "agent-args": { type: "string" },
      out: { type: "string" },
      quick: { type: "boolean", default: false },
      strict: { type: "boolean", default: false },
      "save-agent-log": { type: "boolean", default: false },
      "budget-min": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, dflt: number, min = 1): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const cores = os.availableParallelism();
  const quick = values.quick;
  let levels = [...new Set([1, cores, 2 * cores, 4 * cores])];
  if (values.levels !== undefined) {
    levels = values.levels.split(",").map((s) => int("levels", s.trim(), 1));
    if (levels.length === 0) throw new UsageError("--levels needs at least one level");
  }
  return {
    jobs: int("jobs", values.jobs, quick ? 2 : 40),
    levels,
    leakJobs: int("leak-jobs", values["leak-jobs"], quick ? 12 : 1000, 0),
    bigJobs: int("big-jobs", values["big-jobs"], quick ? 2 : 16),
    bigBytes: int("big-mb", values["big-mb"], 20) * 1024 * 1024,
    warmup: int("warmup", values.warmup, quick ? 1 : 4, 0),
    rounds: int("rounds", values.rounds, 2),
    poolThreads: int("pool-threads", values["pool-threads"], 2 * cores),
    agentArgs: (values["agent-args"] ?? "").split(/\s+/).filter((x) => x !== ""),
    settleMs: quick ? 1000 : 3000,
    out: path.resolve(values.out ?? path.join(REPO, "bench/results")),
    strict: values.strict,
    quick,
    saveAgentLog: values["save-agent-log"],
    budgetMin: int("budget-min", values["budget-min"], 12),
    callsJobs: int("calls-jobs", values["calls-jobs"], quick ? 4 : 40, 0),
  };
}

export class UsageError extends Error {}
