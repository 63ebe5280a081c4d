/**
 * Linux /proc readers: CPU time of a process (all threads, exited ones included) and of its
 * main thread, RSS, thread count, processes by name, and the machine's busy CPU time.
 */
import { readdirSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  /* 100 is the Linux default */
}
export const msPerTick = 1000 / ticksPerSecond;

/** utime + stime of /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat, in ms; null when gone. */
function statCpuMs(file: string): number | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); utime is field 14, stime field 15
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return (utime + stime) * msPerTick;
}

/** CPU time of a whole process (every thread, live or exited), in ms. */
export function processCpuMs(pid: number): number | null {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU time of a process's main thread only, in ms. */
export function mainThreadCpuMs(pid: number): number | null {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

export interface ProcStatus {
  rssBytes: number;
  threads: number;
}

export function procStatus(pid: number): ProcStatus | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(text);
  const threads = /^Threads:\s+(\d+)/m.exec(text);
  if (!rss || !threads) return null;
  return { rssBytes: Number(rss[1]) * 1024, threads: Number(threads[1]) };
}

/** Pids whose /proc/<pid>/comm is exactly `name`. */
export function pidsByName(name: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The machine's CPU time since boot, in ms summed over all cores: busy and total. */
export function machineCpuMs(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy * msPerTick, total: (busy + idle + iowait) * msPerTick };
}
