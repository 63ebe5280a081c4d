/** The agent's logger: JSON lines on stdout, one `job` field on every job line, `container` on container lines. */
import { pino, type Logger } from "pino";

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

export function createLogger(options: LogOptions): Logger {
  return pino(
    {
      name: "inginious-agent-docker",
      level: options.level ?? (options.verbose ? "debug" : options.quiet ? "warn" : "info"),
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: options.destination ?? 1, sync: true }),
  );
}
