/** The agent's logger: JSON lines on stdout, one `job` field on every job line, `container` on container lines. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(options: { verbose: boolean; name?: string; destination?: number }): Logger {
  return pino(
    {
      name: options.name ?? "inginious-agent-docker",
      level: options.verbose ? "debug" : "info",
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: options.destination ?? 1, sync: true }),
  );
}
