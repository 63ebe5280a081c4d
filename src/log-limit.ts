/**
 * A cap on the log lines that one party's flood of messages can cause: at most `perSecond` lines
 * go through in each second (a window that starts with the first line after the previous one
 * ended); the others are counted, by message, and told in one line, "log lines suppressed", when
 * the next window opens or when `flush` is called (a job's end). So a grader that sends hundreds
 * of thousands of bad requests a second costs the log at most perSecond + 1 lines a second, and
 * an operator still learns how many were not written. Time is given (performance.now by
 * default) so that the windows can be tested without waiting.
 */
import type { Logger } from "./log.js";

/** Lines a second one job's grader can cause through the flood-prone warnings (see workers/students.ts). */
export const JOB_FLOOD_LINES_PER_SECOND = 10;

const WINDOW_MS = 1000;

type Level = "warn" | "info" | "debug" | "error";

export class LogLimiter {
  private windowStart = -Infinity;
  private inWindow = 0;
  /** message -> lines not written since the last summary */
  private suppressed = new Map<string, number>();

  constructor(
    /** Where the summaries go (a job's logger). */
    private readonly log: Logger,
    private readonly perSecond = JOB_FLOOD_LINES_PER_SECOND,
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(log: Logger, fields: Record<string, unknown>, msg: string): void {
    this.write("warn", log, fields, msg);
  }

  info(log: Logger, fields: Record<string, unknown>, msg: string): void {
    this.write("info", log, fields, msg);
  }

  debug(log: Logger, fields: Record<string, unknown>, msg: string): void {
    // a line the level hides costs nothing and uses none of the window's lines
    if (log.isLevelEnabled("debug")) this.write("debug", log, fields, msg);
  }

  error(log: Logger, fields: Record<string, unknown>, msg: string): void {
    this.write("error", log, fields, msg);
  }

  /** Lines counted and not written since the last summary. */
  get pending(): number {
    let n = 0;
    for (const c of this.suppressed.values()) n += c;
    return n;
  }

  /** Writes the summary of what was suppressed, if anything was. */
  flush(): void {
    if (this.suppressed.size === 0) return;
    const counts = Object.fromEntries(this.suppressed);
    this.suppressed = new Map();
    this.log.warn({ suppressed: counts, total: Object.values(counts).reduce((a, b) => a + b, 0) }, "log lines suppressed");
  }

  private write(level: Level, log: Logger, fields: Record<string, unknown>, msg: string): void {
    const t = this.now();
    if (t - this.windowStart >= WINDOW_MS) {
      this.windowStart = t;
      this.inWindow = 0;
      this.flush();
    }
    if (this.inWindow >= this.perSecond) {
      this.suppressed.set(msg, (this.suppressed.get(msg) ?? 0) + 1);
      return;
    }
    this.inWindow++;
    log[level](fields, msg);
  }
}
