/**
 * A Docker engine that stops answering on cue: an HTTP proxy on a unix socket of its own, in
 * front of the real engine's socket, for an agent started with DOCKER_HOST=unix://<socketPath>.
 * `rule` decides, per request, to pass it through, to hold it (never forwarded, never answered),
 * to forward it and hold its answer (the engine did the work, the agent never hears of it), or
 * to answer it at once with an engine error (500, never forwarded).
 * `release()` passes everything again and drops what it held. Attach (HTTP upgrade) is proxied
 * as raw bytes both ways. `tap`, when set, is given each plain request's body as it passed.
 */
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";

export type ProxyAction = "pass" | "hold" | "answer-never" | "fail";
export type ProxyRule = (method: string, url: string) => ProxyAction;

function upstreamSocket(): string {
  const host = process.env["DOCKER_HOST"] ?? "";
  return host.startsWith("unix://") ? host.slice("unix://".length) : "/var/run/docker.sock";
}

export class EngineProxy {
  readonly socketPath: string;
  rule: ProxyRule = () => "pass";
  tap: ((method: string, url: string, body: Buffer) => void) | null = null;
  /** Requests held so far, as "METHOD url". */
  readonly heldRequests: string[] = [];
  private readonly dir: string;
  private readonly upstream = upstreamSocket();
  private readonly server: http.Server;
  private readonly held = new Set<{ destroy(): void }>();
  private readonly sockets = new Set<net.Socket>();

  constructor() {
    this.dir = mkdtempSync(path.join(os.tmpdir(), "iad-engine-proxy-"));
    this.socketPath = path.join(this.dir, "docker.sock");
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.requestTimeout = 0;
    this.server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on("connection", (s: net.Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  get host(): string {
    return `unix://${this.socketPath}`;
  }

  start(): Promise<this> {
    return new Promise((resolve) => this.server.listen(this.socketPath, () => resolve(this)));
  }

  /** Passes everything from now on; what was held is dropped (its client gave up long ago). */
  release(): void {
    this.rule = () => "pass";
    for (const h of this.held) h.destroy();
    this.held.clear();
  }

  async close(): Promise<void> {
    this.release();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private action(req: http.IncomingMessage): ProxyAction {
    const action = this.rule(req.method ?? "", req.url ?? "");
    if (action !== "pass") this.heldRequests.push(`${req.method} ${req.url}`);
    return action;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const action = this.action(req);
    if (action === "hold") {
      this.held.add(res.socket!);
      return;
    }
    if (action === "fail") {
      req.resume();
      res.writeHead(500, { "Content-Type": "application/json" }).end(JSON.stringify({ message: "refused by the test's engine proxy" }));
      return;
    }
    const up = http.request({ socketPath: this.upstream, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (action === "answer-never") {
        answer.resume();
        this.held.add(res.socket!);
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
    });
    up.on("error", () => res.destroy());
    const tap = this.tap;
    if (tap !== null) {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => tap(req.method ?? "", req.url ?? "", Buffer.concat(chunks)));
    }
    res.on("close", () => {
      if (action === "pass") up.destroy();
    });
    req.pipe(up);
  }

  private onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    if (this.action(req) === "hold") {
      this.held.add(socket);
      return;
    }
    // The engine takes the connection over right after the request's headers, and reads what it
    // already buffered as nothing: headers and body must reach it in one write, or the body
    // becomes the container's stdin.
    const length = Number(req.headers["content-length"] ?? 0);
    let body = head;
    const forward = (): void => {
      socket.off("data", collect);
      socket.pause();
      const up = net.connect(this.upstream, () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        up.write(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), body]));
        up.pipe(socket);
        socket.pipe(up);
        socket.resume();
      });
      up.on("error", () => socket.destroy());
      socket.on("error", () => up.destroy());
      up.on("close", () => socket.destroy());
      socket.on("close", () => up.destroy());
    };
    const collect = (chunk: Buffer): void => {
      body = Buffer.concat([body, chunk]);
      if (body.length >= length) forward();
    };
    if (body.length >= length) forward();
    else socket.on("data", collect);
  }
}
