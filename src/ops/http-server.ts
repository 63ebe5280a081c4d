/** The operator's HTTP port: GET /metrics (Prometheus text) and GET /healthz (JSON, 200 or 503). */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { HealthChecker } from "./health.js";

export interface OpsHttpServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  host: string;
  close(): Promise<void>;
}

export class OpsListenError extends Error {}

export async function startOpsHttpServer(
  host: string, port: number, registry: Registry, health: HealthChecker,
): Promise<OpsHttpServer> {
  const server = http.createServer((req, res) => {
    void answer(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end(`internal error: ${err.message}\n`);
    });
  });

  async function answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
      res.end("only GET and HEAD\n");
      return;
    }
    if (path === "/metrics") {
      const body = await registry.metrics();
      res.writeHead(200, { "content-type": registry.contentType });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    if (path === "/healthz") {
      const report = await health.check();
      res.writeHead(report.status === "ok" ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : `${JSON.stringify(report)}\n`);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end("not found: try /metrics or /healthz\n");
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const hint = err.code === "EADDRINUSE" ? "another process uses this port: choose another --metrics-port"
        : err.code === "EACCES" ? "ports below 1024 need root: choose a higher --metrics-port"
        : err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND" ? "no interface of this host has this address: check --metrics-host"
        : "check --metrics-host and --metrics-port";
      reject(new OpsListenError(`cannot serve metrics on ${host}:${port} (${err.code ?? err.message}): ${hint}`));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  server.unref();
  const bound = server.address() as AddressInfo;
  return {
    port: bound.port,
    host,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
