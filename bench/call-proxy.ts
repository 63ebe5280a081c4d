/**
 * A counting pass-through in front of the engine's unix socket: clients connect to the proxy's
 * socket, every byte goes through unchanged both ways, and each HTTP request a client sends is
 * counted by kind, its method and path template (`POST /containers/{id}/start`; the API version
 * prefix and the query dropped, ids replaced). A request that upgrades its connection (attach)
 * ends the counting on that connection: what follows is the container's stream. Requests are
 * told apart by their Content-Length or chunked bodies, as HTTP/1.1 frames them.
 */
import net from "node:net";

/** The kind of a request: method and path template. */
export function requestKind(method: string, target: string): string {
  const p = target.split("?")[0]!.replace(/^\/v\d+(\.\d+)?(?=\/)/, "");
  const parts = p.split("/").map((seg, i, all) => {
    if (i === 2 && (all[1] === "containers" || all[1] === "volumes" || all[1] === "exec" || all[1] === "networks") &&
      !["create", "json", "prune"].includes(seg)) return "{id}";
    if (i >= 2 && all[1] === "images" && !["create", "json", "load", "search", "prune", "get"].includes(seg) && i < all.length - 1) return "{name}";
    return seg;
  });
  return `${method} ${parts.join("/")}`;
}

/** Reads the HTTP requests out of one client connection's bytes. */
class RequestSniffer {
  private buf: Buffer = Buffer.alloc(0);
  /** Body bytes still to skip; -1: a chunked body. */
  private skip = 0;
  private upgraded = false;

  constructor(private readonly onRequest: (kind: string) => void) {}

  push(chunk: Buffer): void {
    if (this.upgraded) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.skip -= n;
        if (this.skip > 0) return;
      }
      if (this.skip === -1 && !this.skipChunks()) return;
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString("latin1").split("\r\n");
      this.buf = this.buf.subarray(end + 4);
      const [method = "?", target = "?"] = head[0]!.split(" ");
      this.onRequest(requestKind(method, target));
      const header = (name: string): string | undefined =>
        head.find((h) => h.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();
      if (header("upgrade") !== undefined) {
        this.upgraded = true;
        this.buf = Buffer.alloc(0);
        return;
      }
      if ((header("transfer-encoding") ?? "").toLowerCase().includes("chunked")) this.skip = -1;
      else this.skip = Number(header("content-length") ?? 0) || 0;
    }
  }

  /** Skips the chunks of a chunked body; true once its last chunk is past. */
  private skipChunks(): boolean {
    for (;;) {
      const eol = this.buf.indexOf("\r\n");
      if (eol < 0) return false;
      const size = parseInt(this.buf.subarray(0, eol).toString("latin1"), 16);
      if (!Number.isFinite(size)) return false;
      if (size === 0) {
        const end = this.buf.indexOf("\r\n\r\n", eol - 2 < 0 ? 0 : eol - 2);
        if (end < 0) return false;
        this.buf = this.buf.subarray(end + 4);
        this.skip = 0;
        return true;
      }
      if (this.buf.length < eol + 2 + size + 2) return false;
      this.buf = this.buf.subarray(eol + 2 + size + 2);
    }
  }
}

export class CallProxy {
  readonly counts = new Map<string, number>();
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(readonly path: string, private readonly engineSocket: string) {
    this.server = net.createServer({ allowHalfOpen: true }, (client) => this.onClient(client));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.path, () => resolve());
    });
  }

  /** The counts so far, as a plain object. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onClient(client: net.Socket): void {
    const engine = net.connect({ path: this.engineSocket, allowHalfOpen: true });
    this.sockets.add(client).add(engine);
    const sniffer = new RequestSniffer((kind) => this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1));
    client.on("data", (chunk: Buffer) => {
      sniffer.push(chunk);
      if (!engine.write(chunk)) client.pause();
    });
    engine.on("drain", () => client.resume());
    engine.on("data", (chunk: Buffer) => {
      if (!client.write(chunk)) engine.pause();
    });
    client.on("drain", () => engine.resume());
    // half-closes go through: an attach's stdin end must reach the engine
    client.on("end", () => engine.end());
    engine.on("end", () => client.end());
    const gone = (): void => {
      client.destroy();
      engine.destroy();
      this.sockets.delete(client);
      this.sockets.delete(engine);
    };
    client.on("close", gone);
    engine.on("close", gone);
    client.on("error", () => {});
    engine.on("error", () => {});
  }
}

/** Per-job counts between two snapshots, largest first. */
export function perJob(before: Record<string, number>, after: Record<string, number>, jobs: number): Record<string, number> {
  const out: Array<[string, number]> = [];
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d > 0) out.push([k, Math.round((d / jobs) * 100) / 100]);
  }
  return Object.fromEntries(out.sort((a, b) => b[1] - a[1]));
}
