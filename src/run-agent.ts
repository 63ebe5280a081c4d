/** Runs the agent as a daemon: start, link to the backend, stop cleanly on SIGINT/SIGTERM. */
import { AgentStartError, GradingAgent } from "./agent.js";
import type { AgentConfig } from "./config.js";
import { BackendLink, BackendSilentError } from "./link/backend-link.js";
import { createLogger } from "./log.js";
import { installLoopMonitor } from "./loop-monitor.js";
import { connectDocker } from "./docker/engine.js";
import type { Ops } from "./ops/ops.js";
import { runStartChecks } from "./ops/self-checks.js";
import { raiseMainThreadPriority, wantedNice } from "./ops/thread-priority.js";

/** Returns the process exit status. */
export async function runAgent(config: AgentConfig): Promise<number> {
  const log = createLogger({ verbose: config.verbose });
  // before any socket or pool thread exists: they inherit it (see ops/thread-priority.ts)
  let nice: number;
  try {
    nice = wantedNice();
  } catch (err) {
    log.fatal((err as Error).message);
    return 2;
  }
  const priority = raiseMainThreadPriority(nice);
  if (priority.kind === "raised") log.info({ nice: priority.nice, threads: priority.threads }, "main thread priority raised");
  else log.info({ nice: priority.nice, reason: priority.reason }, "main thread priority unchanged");
  if (config.diskLimit === false) {
    log.warn({ check: "disk-limit" }, "disk limits off (--disable-disk-limit): jobs may write to disk without bound, as with INGInious's own agent");
  }
  const problems = await runStartChecks(config, connectDocker(), log);
  if (problems.some((p) => p.level === "fatal")) {
    log.fatal({ problems: problems.filter((p) => p.level === "fatal").map((p) => p.check) }, "not starting: fix the problems above");
    return 1;
  }
  let agent: GradingAgent;
  try {
    agent = await GradingAgent.start(config, log);
  } catch (err) {
    const message = err instanceof AgentStartError ? err.message : `failed to start: ${(err as Error).stack ?? String(err)}`;
    log.fatal(message);
    return 1;
  }
  installLoopMonitor(log, () => agent.poolThreads);
  const link = new BackendLink(config.backend, agent, log, { autorestart: config.autorestart, silenceMs: 10_000 });
  let ops: Ops | null = null;
  if (config.metricsPort !== undefined && config.metricsPort !== null) {
    try {
      // loaded only here: the metrics (prom-client) cost the main thread a few MB it otherwise need not hold
      const { startOps } = await import("./ops/ops.js");
      ops = await startOps(config, agent, link, log);
    } catch (err) {
      log.fatal((err as Error).message);
      await agent.shutdown();
      setTimeout(() => process.exit(1), 200).unref();
      return 1;
    }
  }

  let stopping: Promise<number> | null = null;
  const stop = (signal: string): Promise<number> => {
    stopping ??= (async () => {
      log.info({ signal }, "stopping: reporting running jobs and removing their containers");
      await agent.shutdown();
      await link.stop();
      await ops?.close();
      return 0;
    })();
    return stopping;
  };
  const signalled = new Promise<number>((resolve) => {
    process.once("SIGINT", () => resolve(stop("SIGINT")));
    process.once("SIGTERM", () => resolve(stop("SIGTERM")));
  });

  const ran = link.run().then(
    () => 0,
    async (err: Error) => {
      if (err instanceof BackendSilentError) log.error(err.message);
      else log.fatal({ err: err.stack }, "the backend link failed");
      await agent.shutdown();
      await ops?.close();
      return 1;
    },
  );
  const code = await Promise.race([ran, signalled]);
  // Leave even if a library keeps a handle open.
  setTimeout(() => process.exit(code), 200).unref();
  return code;
}
