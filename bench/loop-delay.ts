/**
 * The agent's event-loop delay over a window: SIGUSR2 opens it (AgentProc.loopWindow), a second
 * SIGUSR2 closes it and the agent writes the window's figures; the agent also resets its
 * histogram each time it logs it (every 60 s), so the window's figures are combined with the
 * log lines written inside it, taking the largest p50, p99 and max (conservative).
 */
import type { AgentProc } from "./agent-proc.js";
import type { LoopDelay } from "./results.js";

/** Event-loop delay over a window opened by loopWindow() at t0: the agent's 60 s log lines and the window's own figures. */
export async function loopDelayWindow(agent: AgentProc, t0: number): Promise<LoopDelay | null> {
  const snap = await agent.loopWindow();
  const logs = await agent.readLog();
  const segments: Array<{ p50: number; p99: number; max: number }> = [];
  for (const l of logs) {
    if (l.msg !== "event loop delay" || typeof l.time !== "string") continue;
    const t = Date.parse(l.time);
    if (t <= t0) continue;
    const d = l["loopDelayMs"] as { p50: number; p99: number; max: number } | undefined;
    if (d) segments.push(d);
  }
  if (snap) segments.push(snap);
  if (segments.length === 0) return null;
  return {
    p50: Math.max(...segments.map((s) => s.p50)),
    p99: Math.max(...segments.map((s) => s.p99)),
    max: Math.max(...segments.map((s) => s.max)),
    segments: segments.length,
  };
}
