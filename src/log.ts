/** The agent's logger: JSON lines on stdout, one `job` field on every job line, `container` on container lines. */
import { isatty } from "node:tty";
import { pino, type Logger } from "pino";
import { prettyDestination } from "./ops/pretty-log.js";

export type { Logger };

export interface LogOptions {
  verbose: boolean;
  /** Warnings and errors only (the `grade` command). */
  quiet?: boolean;
  /** File descriptor: 1 (stdout, the daemon) or 2 (stderr, `grade`, whose stdout carries results). */
  destination?: number;
  /** An explicit pino level, overriding verbose/quiet (workers take the main thread's). */
  level?: string;
}

/**
 * JSON, unless the destination is a terminal (then short readable lines);
 * INGINIOUS_AGENT_LOG_FORMAT=json or =pretty forces one (workers read it too).
 */
function usePretty(fd: number): boolean {
  const format = process.env["INGINIOUS_AGENT_LOG_FORMAT"];
  if (format === "json") return false;
  if (format === "pretty") return true;
  return isatty(fd);
}

export function createLogger(options: LogOptions): Logger {
  const fd = options.destination ?? 1;
  return pino(
    {
      name: "inginious-agent-docker",
      level: options.level ?? (options.verbose ? "debug" : options.quiet ? "warn" : "info"),
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    usePretty(fd) ? prettyDestination(fd, !process.env["NO_COLOR"] && isatty(fd)) : pino.destination({ dest: fd, sync: true }),
  );
}
