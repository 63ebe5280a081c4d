/**
 * The engine's event stream for this agent's containers, kept alive: parsed line by line,
 * tolerant of unknown fields, resumed with `since` after a break, duplicates ignored.
 */
import { EventEmitter } from "node:events";
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JsonLineSplitter } from "../protocol/json-lines.js";
import { LABEL_AGENT } from "./labels.js";

export interface ContainerEvent {
  action: string;
  containerId: string;
  timeNano: bigint;
  attributes: Record<string, string>;
}

/** Reads one decoded event line; null when it is not a container event we understand. */
export function parseContainerEvent(value: unknown): ContainerEvent | null {
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const type = v["Type"] ?? v["type"];
  if (type !== undefined && type !== "container") return null;
  const actor = (v["Actor"] ?? {}) as Record<string, unknown>;
  const id = actor["ID"] ?? v["id"];
  const action = v["Action"] ?? v["status"];
  if (typeof id !== "string" || typeof action !== "string") return null;
  const nano = v["timeNano"];
  const secs = v["time"];
  const timeNano =
    typeof nano === "number" || typeof nano === "string" ? BigInt(Math.trunc(Number(nano))) :
    typeof secs === "number" ? BigInt(secs) * 1_000_000_000n : 0n;
  const attributes = (actor["Attributes"] ?? {}) as Record<string, string>;
  return { action, containerId: id, timeNano, attributes };
}

export interface DockerEventsEvents {
  oom: [containerId: string];
  die: [containerId: string, exitCode: number];
  /** The stream is back after a break (the engine may have restarted). */
  resumed: [];
}

export class DockerEventWatcher extends EventEmitter<DockerEventsEvents> {
  private stopped = false;
  private stream: NodeJS.ReadableStream | null = null;
  private lastSeenNano = 0n;
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];
  restarts = 0;
  alive = false;

  constructor(
    private readonly docker: Docker,
    private readonly agent: string,
    private readonly log: Logger,
  ) {
    super();
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    (this.stream as unknown as { destroy?: () => void } | null)?.destroy?.();
  }

  private remember(key: string): boolean {
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    this.seenOrder.push(key);
    if (this.seenOrder.length > 10000) this.seen.delete(this.seenOrder.shift()!);
    return true;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const opts: Record<string, unknown> = {
          filters: { type: ["container"], event: ["oom", "die"], label: [`${LABEL_AGENT}=${this.agent}`] },
        };
        if (this.lastSeenNano > 0n) opts["since"] = (Number(this.lastSeenNano / 1_000_000n) / 1000).toFixed(3);
        const stream = await this.docker.getEvents(opts);
        this.stream = stream;
        this.alive = true;
        this.log.info({ resumed: this.restarts > 0 }, "docker event stream started");
        if (this.restarts > 0) this.emit("resumed");
        const lines = new JsonLineSplitter();
        await new Promise<void>((resolve) => {
          stream.on("data", (chunk: Buffer) => {
            for (const value of lines.push(chunk, (line) => this.log.warn({ line }, "unreadable docker event"))) {
              const ev = parseContainerEvent(value);
              if (ev === null) continue;
              if (ev.timeNano > this.lastSeenNano) this.lastSeenNano = ev.timeNano;
              if (!this.remember(`${ev.containerId}/${ev.action}/${ev.timeNano}`)) continue;
              if (ev.action === "oom") this.emit("oom", ev.containerId);
              else if (ev.action === "die") this.emit("die", ev.containerId, Number(ev.attributes["exitCode"] ?? -1));
            }
          });
          stream.on("end", resolve);
          stream.on("close", resolve);
          stream.on("error", resolve);
        });
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "docker event stream unavailable");
      }
      this.alive = false;
      if (this.stopped) return;
      this.restarts++;
      this.log.warn("docker event stream ended; restarting it in 1 s");
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
