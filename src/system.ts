/** Facts about the host the agent needs: open-file limits (its memory: limits/memory-budget.ts). */
import { readFileSync } from "node:fs";

/** The agent's own RLIMIT_NOFILE (soft, hard), from /proc; a safe default elsewhere. */
export function openFileLimits(): { soft: number; hard: number } {
  try {
    const text = readFileSync("/proc/self/limits", "utf8");
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
    if (m) {
      const num = (s: string): number => (s === "unlimited" ? 1048576 : parseInt(s, 10));
      return { soft: num(m[1]!), hard: num(m[2]!) };
    }
  } catch {
    /* not Linux */
  }
  return { soft: 1024, hard: 4096 };
}
