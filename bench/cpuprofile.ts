/**
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`, e.g. an agent run by the bench with
 * BENCH_AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"): per file, the sampled time and the
 * functions with the most self time, and the heaviest call paths into the project's own code.
 *
 *   node dist/bench/cpuprofile.js DIR_OR_FILE... [--top N] [--merge-workers]
 *
 * --merge-workers: the files of worker threads (thread id > 0 in node's file name
 * CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile) are summed into one summary.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function label(n: Node): string {
  const f = n.callFrame;
  const file = f.url === "" ? "" : ` ${f.url.replace(/^file:\/\//, "").replace(/^.*\/(node_modules\/)/, "$1").replace(/^.*\/dist\//, "dist/")}:${f.lineNumber + 1}`;
  return `${f.functionName || "(anonymous)"}${file}`;
}

export function summarise(files: string[], title: string, top = 15): string {
  const byLabel = new Map<string, number>();
  /** Time attributed to the innermost frame of the project's own code (dist/src, dist/workers). */
  const byOwn = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let profiled = 0;
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
    profiled += (p.endTime - p.startTime) / 1e6;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const self = new Map<number, number>();
    p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
    for (const [id, us] of self) {
      total += us;
      const n = byId.get(id)!;
      if (n.callFrame.functionName === "(idle)") idle += us;
      byLabel.set(label(n), (byLabel.get(label(n)) ?? 0) + us);
      let cur: number | undefined = id;
      while (cur !== undefined) {
        const x = byId.get(cur)!;
        if (/\/dist\/(src|workers)\//.test(x.callFrame.url)) {
          byOwn.set(label(x), (byOwn.get(label(x)) ?? 0) + us);
          break;
        }
        cur = parent.get(cur);
      }
    }
  }
  const ms = (us: number): string => (us / 1000).toFixed(0).padStart(7);
  const lines = [
    `${title}: ${files.length} profile(s), ${profiled.toFixed(1)} thread-s profiled, ${ms(total - idle).trim()} ms busy`,
    "  self ms  function (busy only)",
  ];
  for (const [l, us] of [...byLabel].filter(([l]) => !l.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${ms(us)}  ${l}`);
  }
  lines.push("  incl ms  innermost project frame (time below it, idle excluded)");
  for (const [l, us] of [...byOwn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${ms(us)}  ${l}`);
  return lines.join("\n");
}

const args = process.argv.slice(2);
let top = 15;
let merge = false;
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--top") top = Number(args[++i]);
  else if (args[i] === "--merge-workers") merge = true;
  else {
    const a = args[i]!;
    if (statSync(a).isDirectory()) {
      for (const f of readdirSync(a).filter((f) => f.endsWith(".cpuprofile")).sort()) files.push(path.join(a, f));
    } else files.push(a);
  }
}
if (files.length === 0) {
  process.stderr.write("usage: node dist/bench/cpuprofile.js DIR_OR_FILE... [--top N]\n");
  process.exit(2);
}
const thread = (f: string): number => Number(/\.(\d+)\.\d+\.cpuprofile$/.exec(f)?.[1] ?? 0);
if (merge) {
  const main = files.filter((f) => thread(f) === 0);
  const workers = files.filter((f) => thread(f) !== 0);
  if (main.length > 0) process.stdout.write(`${summarise(main, "main thread", top)}\n\n`);
  if (workers.length > 0) process.stdout.write(`${summarise(workers, "worker threads", top)}\n\n`);
} else {
  for (const f of files) process.stdout.write(`${summarise([f], path.basename(f), top)}\n\n`);
}
