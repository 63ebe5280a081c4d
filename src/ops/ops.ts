/** Wires the operator features to a running agent: metrics, health, the HTTP server, the hooks. */
import { readFileSync } from "node:fs";
import type { GradingAgent } from "../agent.js";
import type { AgentConfig } from "../config.js";
import { DEFAULT_METRICS_HOST } from "../config.js";
import type { BackendLink } from "../link/backend-link.js";
import type { Logger } from "../log.js";
import { instrumentDocker, listenForDockerErrors } from "./docker-errors.js";
import { HealthChecker } from "./health.js";
import { startOpsHttpServer, type OpsHttpServer } from "./http-server.js";
import { createAgentMetrics } from "./metrics.js";

export interface Ops {
  server: OpsHttpServer;
  health: HealthChecker;
  close(): Promise<void>;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** Starts the metrics and health server; throws OpsListenError when the port cannot be bound. */
export async function startOps(config: AgentConfig, agent: GradingAgent, link: BackendLink, log: Logger): Promise<Ops> {
  const health = new HealthChecker({
    lastBackendMessageAt: () => link.lastReceivedAt,
    dockerEventsAlive: () => agent.dockerEventsAlive,
    docker: agent.docker,
  });
  const metrics = createAgentMetrics({
    observed: agent.observed,
    concurrency: config.concurrency,
    runningJobs: () => agent.dispatchedJobs,
    queuedJobs: () => agent.queuedJobs,
    warmContainers: () => agent.warmContainers,
    layeredTasks: () => agent.layeredTasks,
    taskFolderMode: () => agent.taskFolders.mode,
    memoryUsableMb: agent.memory.usableMb,
    memoryReservedMb: () => agent.memory.reservedMb,
    jobsWaitingForMemory: () => agent.jobsWaitingForMemory,
    studentsWaitingForMemory: () => agent.studentsWaitingForMemory,
    backendReconnects: () => link.reconnects,
    lastBackendMessageAt: () => link.lastReceivedAt,
    dockerEventRestarts: () => agent.dockerEventRestarts,
    dockerEventsAlive: () => agent.dockerEventsAlive,
    dockerUp: async () => (await health.docker()).ok,
    info: { version: packageVersion(), agent: agent.id, friendly_name: config.friendlyName },
  });
  instrumentDocker(agent.docker, metrics.dockerError);
  const stopListening = listenForDockerErrors(metrics.dockerError);
  link.onPingAnswered = (ms) => metrics.pingAnswered(ms / 1000);

  const host = config.metricsHost ?? DEFAULT_METRICS_HOST;
  let server: OpsHttpServer;
  try {
    server = await startOpsHttpServer(host, config.metricsPort ?? 0, metrics.registry, health);
  } catch (err) {
    stopListening();
    metrics.close();
    link.onPingAnswered = null;
    throw err;
  }
  log.info({ host, port: server.port, paths: ["/metrics", "/healthz"] }, "metrics server listening");
  return {
    server,
    health,
    async close() {
      link.onPingAnswered = null;
      stopListening();
      metrics.close();
      await server.close();
    },
  };
}
