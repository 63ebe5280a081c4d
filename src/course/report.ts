/**
 * What `test` prints while it runs. On a terminal: a progress bar, and above it one line per case
 * that did not pass (a mismatch with its short diff, an unusable file, a job that could not run,
 * a skipped file), then a summary. Otherwise (CI logs, pipes): one JSON object per line, one per
 * case as it ends (`"type": "case"`), then one summary (`"type": "summary"`).
 */
import { countCases, INTERRUPTED, type CaseReport, type Counts } from "./case-report.js";
import { shortDiff } from "./compare.js";

export interface Reporter {
  start(total: number): void;
  onCase(c: CaseReport): void;
  finish(cases: readonly CaseReport[], seconds: number, exit: number): void;
}

interface Output {
  write(text: string): unknown;
  columns?: number;
}

/** Buffers as base64 in JSON, not as arrays of numbers. */
function jsonValue(_key: string, v: unknown): unknown {
  const b = v as { type?: unknown; data?: unknown } | null;
  if (b?.type === "Buffer" && Array.isArray(b.data)) return { base64: Buffer.from(b.data as number[]).toString("base64") };
  if (v instanceof Uint8Array) return { base64: Buffer.from(v).toString("base64") };
  return v;
}

export function jsonReporter(out: Output): Reporter {
  return {
    start() {},
    onCase(c) {
      const { file, courseId, taskId, status, result, grade, seconds, message, mismatches } = c;
      const line = { type: "case", file, course: courseId, task: taskId, status, result, grade, seconds, message, mismatches };
      out.write(`${JSON.stringify(line, jsonValue)}\n`);
    },
    finish(cases, seconds, exit) {
      out.write(`${JSON.stringify({ type: "summary", ...countCases(cases), seconds, exit })}\n`);
    },
  };
}

const LABEL: Record<CaseReport["status"], string> = {
  pass: "ok", fail: "DIFFERS", error: "UNUSABLE", skipped: "skipped", unrun: "NOT RUN", recorded: "recorded",
};

/** The lines a case gets above the bar (none for a pass, or a record that changed nothing). */
export function caseLines(c: CaseReport): string[] {
  if (c.status === "pass" || (c.status === "recorded" && c.message === "")) return [];
  if (c.status !== "fail") return [`${LABEL[c.status]} ${c.file}${c.message === "" ? "" : `: ${c.message}`}`];
  const diffs = c.mismatches.map(shortDiff);
  const head = `${LABEL.fail} ${c.file}: ${diffs.map((d) => d[0]).join("; ")}`;
  return [head, ...diffs.flatMap((d) => d.slice(1).map((l) => `    ${l}`))];
}

export function summaryLine(counts: Counts, seconds: number): string {
  const parts = [`${counts.pass} matched`];
  if (counts.recorded > 0) parts.push(`${counts.recorded} recorded`);
  if (counts.fail > 0) parts.push(`${counts.fail} differ`);
  if (counts.error > 0) parts.push(`${counts.error} unusable`);
  if (counts.unrun > 0) parts.push(`${counts.unrun} not run`);
  if (counts.skipped > 0) parts.push(`${counts.skipped} skipped`);
  return `${counts.total} test file${counts.total === 1 ? "" : "s"}: ${parts.join(", ")} (${seconds.toFixed(1)} s)`;
}

export function terminalReporter(out: Output): Reporter {
  let total = 0;
  let done = 0;
  let bad = 0;
  const bar = (): string => {
    const width = Math.max(10, Math.min(40, (out.columns ?? 80) - 30));
    const filled = total === 0 ? width : Math.round((done / total) * width);
    return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}${bad > 0 ? `, ${bad} not ok` : ""}`;
  };
  const redraw = (): void => void out.write(`\r\x1b[K${bar()}`);
  return {
    start(n) {
      total = n;
      redraw();
    },
    onCase(c) {
      done++;
      if (c.status === "fail" || c.status === "error" || c.status === "unrun") bad++;
      const lines = caseLines(c);
      if (lines.length > 0) out.write(`\r\x1b[K${lines.join("\n")}\n`);
      redraw();
    },
    finish(cases, seconds, exit) {
      out.write(`\r\x1b[K${summaryLine(countCases(cases), seconds)}${exit === INTERRUPTED ? ", interrupted" : ""}\n`);
    },
  };
}
