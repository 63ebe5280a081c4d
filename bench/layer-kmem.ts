/**
 * What a layered /task costs its container in kernel memory: a task folder of N small files is
 * made, a volume is made over it as the agent makes a job's (src/jobs/task-layer.ts: the writable
 * layer on /dev/shm, metacopy on or off), and a container of the sample image walks /task as
 * INGInious's `set_directory_rights` does (chown, then chmod, of every entry), reading its memory
 * cgroup (v1: memory.usage_in_bytes and memory.kmem.usage_in_bytes) before and after. Then the
 * container's limit is lowered step by step (the kernel reclaims what it can to fit): the lowest
 * limit it accepts, less the same figure with no files, is what cannot be reclaimed. Per entry:
 * the difference between N files and none, over N. The copy (a bind of a folder the bench copied,
 * as the Python agent does) is measured the same way, for comparison.
 *
 *   node dist/bench/layer-kmem.js [N ...]       (default 0 10000 20000; root, cgroup v1)
 * writes bench/results/layer-kmem-latest.json.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Docker from "dockerode";
import { taskVolumeSpec } from "../src/jobs/task-layer.js";

const IMAGE = "inginious-agent-docker/sample:latest";
const LABEL = "org.inginious-agent-docker.bench";
const LIMIT_MB = 1024;
const MB = 1024 * 1024;

const WALK = `
import os, sys, time
def rd(n):
    try: return int(open('/sys/fs/cgroup/memory/' + n).read())
    except Exception: return -1
u0, k0 = rd('memory.usage_in_bytes'), rd('memory.kmem.usage_in_bytes')
n = 0
for root, dirs, files in os.walk('/task'):
    for x in dirs + files:
        p = os.path.join(root, x)
        os.lchown(p, 1000, 1000)
        if not os.path.islink(p): os.chmod(p, 0o777)
        n += 1
u1, k1 = rd('memory.usage_in_bytes'), rd('memory.kmem.usage_in_bytes')
print(n, u1 - u0, k1 - k0, u1, flush=True)
time.sleep(600)
`;

type Mode = "layer-metacopy" | "layer" | "copy";
interface Sample { mode: Mode; entries: number; usageBytes: number; kmemBytes: number; pinnedMb: number }

const docker = new Docker();

function makeTask(dir: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const d = path.join(dir, `d${Math.floor(i / 200)}`);
    if (i % 200 === 0) mkdirSync(d, { recursive: true });
    writeFileSync(path.join(d, `f${i}`), "x".repeat(100));
  }
}

/** The lowest limit (MB) the kernel lets the container shrink to, by halving steps from its usage. */
async function pinnedMb(c: Docker.Container, usageMb: number): Promise<number> {
  let ok = Math.ceil(usageMb) + 1;
  let step = Math.max(1, Math.floor(ok / 2));
  while (step >= 1) {
    const target = ok - step;
    try {
      if (target < 6) throw new Error("too low");
      await c.update({ Memory: target * MB, MemorySwap: target * MB });
      ok = target;
    } catch {
      step = Math.floor(step / 2);
    }
  }
  return ok;
}

async function measure(mode: Mode, entries: number, root: string): Promise<Sample> {
  const lower = path.join(root, `task-${entries}`);
  mkdirSync(lower, { recursive: true });
  makeTask(lower, entries);
  const layer = mkdtempSync("/dev/shm/iad-bench-kmem-");
  const volume = `iad-bench-kmem-${path.basename(layer)}`;
  let bind: string;
  if (mode === "copy") {
    const copy = path.join(root, `copy-${entries}`);
    cpSync(lower, copy, { recursive: true });
    bind = `${copy}:/task`;
  } else {
    mkdirSync(path.join(layer, "upper"));
    mkdirSync(path.join(layer, "work"));
    await docker.createVolume(taskVolumeSpec(volume, lower, path.join(layer, "upper"), path.join(layer, "work"), { [LABEL]: "kmem" }, mode === "layer-metacopy"));
    bind = `${volume}:/task`;
  }
  writeFileSync(path.join(root, "walk.py"), WALK);
  const c = await docker.createContainer({
    Image: IMAGE, Cmd: ["python3", "/walk.py"], Labels: { [LABEL]: "kmem" },
    HostConfig: { Binds: [bind, `${path.join(root, "walk.py")}:/walk.py:ro`], Memory: LIMIT_MB * MB, MemorySwap: LIMIT_MB * MB, NetworkMode: "none" },
  });
  try {
    await c.start();
    const stream = await c.logs({ follow: true, stdout: true, stderr: true });
    const line = await new Promise<string>((resolve, reject) => {
      let text = "";
      stream.on("data", (b: Buffer) => {
        text += b.subarray(8).toString();
        const m = /^(\d+) (-?\d+) (-?\d+) (\d+)$/m.exec(text);
        if (m) resolve(m[0]);
      });
      stream.on("end", () => reject(new Error(`the walk ended without its figures: ${text}`)));
    });
    (stream as unknown as { destroy(): void }).destroy();
    const [n, du, dk, u] = line.split(" ").map(Number) as [number, number, number, number];
    return { mode, entries: n, usageBytes: du, kmemBytes: dk, pinnedMb: await pinnedMb(c, u / MB) };
  } finally {
    await c.remove({ force: true });
    if (mode !== "copy") await docker.getVolume(volume).remove().catch(() => {});
    rmSync(layer, { recursive: true, force: true });
    rmSync(lower, { recursive: true, force: true });
    rmSync(path.join(root, `copy-${entries}`), { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const counts = process.argv.slice(2).map(Number).filter((n) => Number.isInteger(n) && n >= 0);
  const ns = counts.length > 0 ? counts : [0, 10_000, 20_000];
  if (!ns.includes(0)) ns.unshift(0);
  const root = mkdtempSync(path.join(os.tmpdir(), "iad-bench-kmem-"));
  const samples: Sample[] = [];
  try {
    for (const mode of ["layer-metacopy", "layer", "copy"] as Mode[]) {
      for (const n of ns) {
        const s = await measure(mode, n, root);
        samples.push(s);
        console.log(`${mode} entries=${s.entries} usage+=${(s.usageBytes / MB).toFixed(1)} MB kmem+=${(s.kmemBytes / MB).toFixed(1)} MB pinned=${s.pinnedMb} MB`);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const perEntry = (mode: Mode): Record<string, number> => {
    const base = samples.find((s) => s.mode === mode && s.entries <= 1)!;
    const big = samples.filter((s) => s.mode === mode).sort((a, b) => b.entries - a.entries)[0]!;
    const n = big.entries - base.entries;
    return {
      entries: big.entries,
      usageBytesPerEntry: Math.round((big.usageBytes - base.usageBytes) / n),
      kmemBytesPerEntry: Math.round((big.kmemBytes - base.kmemBytes) / n),
      pinnedBytesPerEntry: Math.round(((big.pinnedMb - base.pinnedMb) * MB) / n),
    };
  };
  const out = { date: new Date().toISOString(), kernel: os.release(), samples, perEntry: Object.fromEntries((["layer-metacopy", "layer", "copy"] as Mode[]).map((m) => [m, perEntry(m)])) };
  console.log(JSON.stringify(out.perEntry, null, 2));
  writeFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), "../../bench/results/layer-kmem-latest.json"), `${JSON.stringify(out, null, 2)}\n`);
}

await main();
