/**
 * Logs for a person at a terminal: one short line per pino record — time, level, message,
 * then `job=` and `container=` and the other fields. JSON stays the format everywhere else
 * (journald, files, pipes), where it is grepped and parsed.
 */
import { writeSync } from "node:fs";

const LEVELS: Record<number, [name: string, color: string]> = {
  10: ["TRACE", "\x1b[90m"],
  20: ["DEBUG", "\x1b[36m"],
  30: ["INFO ", "\x1b[32m"],
  40: ["WARN ", "\x1b[33m"],
  50: ["ERROR", "\x1b[31m"],
  60: ["FATAL", "\x1b[35m"],
};
const RESET = "\x1b[0m";
const DIM = "\x1b[2m";
/** Fields every record has, or that the line shows in its own place. */
const HIDDEN = new Set(["level", "time", "msg", "pid", "hostname", "name", "job", "container"]);

function value(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** One pino JSON line as a terminal line (without the newline); a line that is not JSON is kept as is. */
export function formatLogLine(line: string, color = true): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof rec !== "object" || rec === null) return line;
  const [name, hue] = LEVELS[rec["level"] as number] ?? [String(rec["level"]).padEnd(5), ""];
  const t = typeof rec["time"] === "string" ? rec["time"] : typeof rec["time"] === "number" ? new Date(rec["time"]).toISOString() : "";
  const time = /T(\d\d:\d\d:\d\d\.\d\d\d)/.exec(t)?.[1] ?? t;
  const parts: string[] = [];
  if (rec["job"] !== undefined) parts.push(`job=${value(rec["job"])}`);
  if (rec["container"] !== undefined) {
    const c = rec["container"];
    parts.push(`container=${typeof c === "string" && /^[0-9a-f]{64}$/.test(c) ? c.slice(0, 12) : value(c)}`);
  }
  for (const [k, v] of Object.entries(rec)) if (!HIDDEN.has(k)) parts.push(`${k}=${value(v)}`);
  const msg = typeof rec["msg"] === "string" ? rec["msg"] : "";
  const level = color && hue ? `${hue}${name}${RESET}` : name;
  const fields = parts.length === 0 ? "" : color ? `  ${DIM}${parts.join(" ")}${RESET}` : `  ${parts.join(" ")}`;
  return `${time} ${level} ${msg}${fields}`;
}

/** A pino destination writing formatted lines to a file descriptor, synchronously (as the JSON one does). */
export function prettyDestination(fd: number, color = true): { write(chunk: string): void } {
  return {
    write(chunk: string): void {
      let out = "";
      for (const line of chunk.split("\n")) if (line !== "") out += `${formatLogLine(line, color)}\n`;
      if (out !== "") writeSync(fd, out);
    },
  };
}
