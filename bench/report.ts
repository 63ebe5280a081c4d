/**
 * The bench's outputs: the JSON (OUT/<run id>.json and OUT/latest.json), the printed table and
 * the SVG chart (throughput and p50 latency against concurrency, agent vs floor; hand-written,
 * no library). It reads the results and nothing else.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { BenchResults } from "./results.js";

/** Writes the JSON and the chart into `out` and prints the table on stdout. */
export function writeResults(out: string, runId: string, results: BenchResults): void {
  mkdirSync(out, { recursive: true });
  const json = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(path.join(out, `${runId}.json`), json);
  writeFileSync(path.join(out, "latest.json"), json);
  writeFileSync(path.join(out, "latest.svg"), svgChart(results));
  process.stdout.write(`${textReport(results)}\n\nwrote ${path.join(out, `${runId}.json`)}, latest.json, latest.svg\n`);
}

const fmt = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(digits);
const mb = (bytes: number | null | undefined): string =>
  bytes === null || bytes === undefined ? "-" : (bytes / 1048576).toFixed(1);

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function textReport(r: BenchResults): string {
  const out: string[] = [];
  out.push(`inginious-agent-docker bench — ${r.meta.startedAt}, ${r.meta.cores} cores, node ${r.meta.node}, docker ${r.meta.dockerVersion}, ` +
    `agent built from ${r.meta.gitCommit?.slice(0, 10) ?? "?"}${r.meta.gitChangedFiles ? ` + ${r.meta.gitChangedFiles} changed file(s) in src/ workers/` : ""}` +
    `${r.meta.quick ? " (QUICK: figures not meaningful)" : ""}`);
  out.push(`${r.meta.jobsPerLevel} trivial jobs per level; agent: ${r.meta.agentArgs.slice(1).join(" ").replace(/--tmpdir \S+ --tasks \S+ /, "")}`);
  out.push(`agent node flags: ${r.meta.agentNodeArgs || "(none)"}; ` +
    `other containers created on the engine during the run: ${r.meta.foreignContainers}`);
  out.push("");
  out.push("Throughput and latency (trivial job; latency = BackendNewJob sent -> AgentJobDone received; floor = same work straight through dockerode)");
  out.push(table(
    ["C", "floor j/s", "agent j/s", "ratio", "floor p50", "agent p50", "p95", "p99", "added p50", "pong p99", "agent CPU ms/job", "floor driver ms/job", "dockerd ms/job floor/agent"],
    r.levels.map((l) => [
      String(l.c), fmt(l.floor.jobsPerS, 2), fmt(l.agent.jobsPerS, 2), fmt(l.ratio, 2),
      fmt(l.floor.latencyMs.p50, 0), fmt(l.agent.latencyMs.p50, 0), fmt(l.agent.latencyMs.p95, 0), fmt(l.agent.latencyMs.p99, 0),
      fmt(l.addedP50Ms, 0), fmt(l.agent.pongMs.p99, 1), fmt(l.agent.cpu.agentMsPerJob, 1), fmt(l.floor.cpu.benchMsPerJob, 1),
      `${fmt(l.floor.cpu.dockerdMsPerJob, 0)} / ${fmt(l.agent.cpu.dockerdMsPerJob, 0)}`,
    ]),
  ));
  if (r.levels.some((l) => l.agent.failures + l.floor.failures > 0)) {
    out.push(`failures: ${r.levels.map((l) => `C=${l.c} floor ${l.floor.failures} agent ${l.agent.failures}`).join(", ")}`);
  }
  out.push("");
  const L = r.load;
  out.push(`Main thread under load (${L.jobs} jobs at C=${L.c}, debug, each result ${mb(L.resultBytes.p50)} MB: ${mb(L.archiveBytes)} MB archive + ${mb(L.stdoutBytes)} MB stdout)`);
  out.push(table(
    ["", "p50", "p99", "max", "n"],
    [
      ["Ping->Pong RTT (ms)", fmt(L.pongMs.p50, 1), fmt(L.pongMs.p99, 1), fmt(L.pongMs.max, 1), String(L.pongMs.n)],
      ["  not behind a big result", fmt(L.pongNotBehindBigMs.p50, 1), fmt(L.pongNotBehindBigMs.p99, 1), fmt(L.pongNotBehindBigMs.max, 1), String(L.pongNotBehindBigMs.n)],
      ["one such frame, quiet (ms)", fmt(L.wireFrameMs?.p50, 1), fmt(L.wireFrameMs?.p99, 1), fmt(L.wireFrameMs?.max, 1), String(L.wireFrameMs?.n ?? 0)],
      ["event-loop delay (ms)", fmt(L.loopDelayMs?.p50, 1), fmt(L.loopDelayMs?.p99, 1), fmt(L.loopDelayMs?.max, 1), `${L.loopDelayMs?.segments ?? 0} seg`],
      ["idle event-loop delay (ms)", fmt(r.idleLoopDelayMs?.p50, 1), fmt(r.idleLoopDelayMs?.p99, 1), fmt(r.idleLoopDelayMs?.max, 1), ""],
      ["job latency (ms)", fmt(L.latencyMs.p50, 0), fmt(L.latencyMs.p99, 0), fmt(L.latencyMs.max, 0), String(L.latencyMs.n)],
    ],
  ));
  out.push(`big results: ${fmt(L.jobsPerS, 2)} jobs/s, ${L.failures} failures; full check of one: ${L.verified.ok ? "ok" : "FAILED"} (${L.verified.detail})`);
  out.push("");
  const M = r.memory;
  out.push(`Memory (agent RSS, MB): idle ${mb(M.idleBytes)}, idle after warm-up ${mb(M.idleAfterWarmupBytes)}, ` +
    `after ${M.leakJobs} trivial jobs ${mb(M.afterLeakJobsBytes)} (x${fmt(M.growthRatio, 3)}; slope ${fmt(M.slopeKbPerJob, 1)} KB/job), ` +
    `under load max ${mb(M.underLoadMaxBytes)}, after load ${mb(M.afterLoadBytes)}`);
  if (M.leakCurve.length > 2) out.push(`  RSS during the leak check (jobs: MB): ${M.leakCurve.map((p) => `${p.jobs}: ${mb(p.rssBytes)}`).join(", ")}`);
  const C = r.cpu;
  out.push(`CPU per trivial job over ${C.jobs} jobs at C=${C.c} (ms): agent ${fmt(C.agentMsPerJob, 2)} (main thread ${fmt(C.agentMainMsPerJob, 2)}), ` +
    `dockerd ${fmt(C.dockerdMsPerJob, 1)}, containerd ${fmt(C.containerdMsPerJob, 1)}, whole machine ${fmt(C.machineBusyMsPerJob, 0)}; ` +
    `agent idle ${fmt(C.agentIdleMsPerS, 2)} ms/s`);
  const T = C.byThread;
  if (T) out.push(`  by thread (ms/job): main ${fmt(T.mainMsPerJob, 2)}, pool ${fmt(T.poolMsPerJob, 2)} (${T.poolThreads} threads), rest ${fmt(T.otherMsPerJob, 2)}`);
  const F = C.jobFolder;
  out.push(`  job folder (task copy included): make ${fmt(F.prepareCpuMs, 2)} ms CPU (${fmt(F.prepareWallMs, 2)} ms wall), delete ${fmt(F.removeCpuMs, 2)} ms CPU, ` +
    `${fmt(F.shareOfAgentCpu === null ? null : F.shareOfAgentCpu * 100, 1)} % of the agent's CPU per job; agent's prepare phase p50 ${fmt(F.agentPrepareMs, 1)} ms`);
  out.push(...engineCallLines(r));
  out.push("");
  out.push("Targets");
  out.push(table(
    ["target", "value", "limit", "met"],
    r.targets.map((t) => [t.description, `${fmt(t.value, t.unit === "x" ? 3 : 1)} ${t.unit}`, `${t.op} ${t.limit}`, t.met === null ? "n/a" : t.met ? "yes" : "NO"]),
  ));
  if (r.problems.length > 0) {
    out.push("");
    out.push("Problems during the run:");
    for (const p of r.problems) out.push(`  - ${p}`);
  }
  return out.join("\n");
}

/** Engine calls per trivial job, agent and floor side by side, by kind. */
function engineCallLines(r: BenchResults): string[] {
  const E = r.engineCalls;
  if (E === null) return [];
  const kinds = [...new Set([...Object.keys(E.agent), ...Object.keys(E.floor)])];
  return [
    "",
    `Engine calls per trivial job (${E.jobs} jobs each, through a counting proxy)`,
    table(["call", "agent", "floor"], [
      ...kinds.map((k) => [k, fmt(E.agent[k] ?? 0, 2), fmt(E.floor[k] ?? 0, 2)]),
      ["total", fmt(E.agentTotal, 2), fmt(E.floorTotal, 2)],
    ]),
  ];
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

interface Series {
  name: string;
  color: string;
  dash: string;
  values: Array<number | null>;
}

/** One panel: y against concurrency (x spaced evenly, one tick per level). */
function panel(x0: number, y0: number, w: number, h: number, title: string, yLabel: string, levels: number[], series: Series[]): string {
  const m = { l: 58, r: 16, t: 30, b: 42 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const rawMax = Math.max(1e-9, ...all);
  const step = niceStep(rawMax / 4);
  const yMax = Math.ceil((rawMax * 1.1) / step) * step;
  const xs = (i: number): number => x0 + m.l + (levels.length === 1 ? pw / 2 : (i * pw) / (levels.length - 1));
  const ys = (v: number): number => y0 + m.t + ph - (v / yMax) * ph;
  const parts: string[] = [];
  parts.push(`<text x="${x0 + w / 2}" y="${y0 + 18}" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<rect x="${x0 + m.l}" y="${y0 + m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    const y = ys(v).toFixed(1);
    parts.push(`<line x1="${x0 + m.l}" x2="${x0 + m.l + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x0 + m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11">${fmtTick(v)}</text>`);
  }
  levels.forEach((c, i) => {
    parts.push(`<text x="${xs(i).toFixed(1)}" y="${y0 + m.t + ph + 16}" text-anchor="middle" font-size="11">${c}</text>`);
  });
  parts.push(`<text x="${x0 + m.l + pw / 2}" y="${y0 + h - 8}" text-anchor="middle" font-size="12">concurrency C (jobs at once)</text>`);
  parts.push(`<text transform="translate(${x0 + 14},${y0 + m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`);
  // at each level, the highest point gets its label above, the others below
  const above = levels.map((_, i) => {
    let best = -1;
    series.forEach((s, k) => {
      const v = s.values[i];
      if (v !== null && v !== undefined && Number.isFinite(v) && (best < 0 || v > (series[best]!.values[i] as number))) best = k;
    });
    return best;
  });
  for (const [k, s] of series.entries()) {
    const pts = s.values.map((v, i) => (v === null || !Number.isFinite(v) ? null : [xs(i), ys(v)] as const));
    const path = pts.filter((p): p is readonly [number, number] => p !== null).map((p, i) => `${i === 0 ? "M" : "L"}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ");
    if (path !== "") parts.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}"/>`);
    pts.forEach((p, i) => {
      if (p === null) return;
      parts.push(`<circle cx="${p[0].toFixed(1)}" cy="${p[1].toFixed(1)}" r="3.5" fill="${s.color}"/>`);
      parts.push(`<text x="${p[0].toFixed(1)}" y="${(p[1] + (above[i] === k ? -7 : 15)).toFixed(1)}" text-anchor="middle" font-size="10" fill="${s.color}">${fmtTick(s.values[i]!)}</text>`);
    });
  }
  return parts.join("\n");
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= raw) return k * p;
  return 10 * p;
}

function fmtTick(v: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1).replace(/\.0$/, "");
  return v.toFixed(2).replace(/0$/, "").replace(/\.0$/, "");
}

export function svgChart(r: BenchResults): string {
  const W = 980;
  const H = 400;
  const levels = r.levels.map((l) => l.c);
  const agent = { name: "agent", color: "#1f6feb", dash: ""};
  const floor = { name: "Docker floor", color: "#6e7781", dash: "6 4"};
  const left = panel(0, 30, W / 2, H - 40, "Throughput", "jobs / s", levels, [
    { ...floor, values: r.levels.map((l) => l.floor.jobsPerS) },
    { ...agent, values: r.levels.map((l) => l.agent.jobsPerS) },
  ]);
  const right = panel(W / 2, 30, W / 2, H - 40, "p50 latency (job sent -> result)", "ms", levels, [
    { ...floor, values: r.levels.map((l) => l.floor.latencyMs.p50) },
    { ...agent, values: r.levels.map((l) => l.agent.latencyMs.p50) },
  ]);
  const legend = [
    `<line x1="20" x2="50" y1="16" y2="16" stroke="${agent.color}" stroke-width="2"/>`,
    `<text x="56" y="16" dominant-baseline="middle" font-size="12">agent</text>`,
    `<line x1="110" x2="140" y1="16" y2="16" stroke="${floor.color}" stroke-width="2" stroke-dasharray="${floor.dash}"/>`,
    `<text x="146" y="16" dominant-baseline="middle" font-size="12">Docker floor (dockerode, no agent)</text>`,
    `<text x="${W - 12}" y="16" text-anchor="end" dominant-baseline="middle" font-size="11" fill="#555">${esc(
      `${r.meta.startedAt} · ${r.meta.cores} cores · ${r.meta.jobsPerLevel} trivial jobs per level${r.meta.quick ? " · QUICK" : ""}`,
    )}</text>`,
  ].join("\n");
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect width="${W}" height="${H}" fill="white"/>
${legend}
${left}
${right}
</svg>
`;
}
