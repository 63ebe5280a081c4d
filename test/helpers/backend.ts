/** A ZeroMQ ROUTER playing the INGInious backend for tests and the bench. */
import { Router } from "zeromq";
import {
  decodeAgentFrame, encodeBackendMessage, type BackendMessage,
} from "../../src/protocol/messages.js";
import { slow } from "./slowness.js";

export type AgentFrame = Record<string, unknown> & { "@type": string };

export interface Received {
  identity: Buffer;
  message: AgentFrame;
  /** The frame as the agent sent it, when the backend keeps frames (`keepFrames`). */
  frame: Buffer | null;
  at: number;
}

export class FakeBackend {
  readonly socket = new Router({ ipv6: true, linger: 0 });
  readonly received: Received[] = [];
  /** Keep each frame beside its decoded message (for byte-for-byte checks). */
  keepFrames = false;
  address = "";
  private waiters: Array<() => void> = [];
  private lastIdentity: Buffer | null = null;
  private closed = false;

  async start(address = "tcp://127.0.0.1:*"): Promise<this> {
    await this.socket.bind(address);
    this.address = this.socket.lastEndpoint!;
    void this.loop();
    return this;
  }

  private async loop(): Promise<void> {
    try {
      for await (const [identity, frame] of this.socket) {
        if (!identity || !frame) continue;
        let message: AgentFrame;
        try {
          message = decodeAgentFrame(frame);
        } catch {
          message = { "@type": "<undecodable>" };
        }
        this.lastIdentity = identity;
        this.received.push({ identity, message, frame: this.keepFrames ? frame : null, at: performance.now() });
        const w = this.waiters;
        this.waiters = [];
        for (const wake of w) wake();
      }
    } catch {
      /* closed */
    }
  }

  get identity(): Buffer {
    if (!this.lastIdentity) throw new Error("no agent has spoken yet");
    return this.lastIdentity;
  }

  async send(message: BackendMessage, identity = this.identity): Promise<void> {
    await this.socket.send([identity, encodeBackendMessage(message)]);
  }

  async sendRaw(frame: Buffer, identity = this.identity): Promise<void> {
    await this.socket.send([identity, frame]);
  }

  /** Waits for the first message (from index `from`) matching `pred`. */
  async waitFor(
    pred: (m: AgentFrame, r: Received) => boolean,
    timeoutMs = 30_000,
    from = 0,
  ): Promise<Received> {
    const deadline = performance.now() + slow(timeoutMs);
    let checked = from; // each message is looked at once, however many arrive
    for (;;) {
      for (; checked < this.received.length; checked++) {
        const r = this.received[checked]!;
        if (pred(r.message, r)) return r;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        const types = this.received.map((r) => r.message["@type"]).join(", ");
        throw new Error(`timed out waiting for a message from the agent (got so far: ${types || "nothing"})`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => (clearTimeout(t), resolve()));
      });
    }
  }

  waitType(type: string, timeoutMs = 30_000, from = 0): Promise<Received> {
    return this.waitFor((m) => m["@type"] === type, timeoutMs, from);
  }

  /** The AgentJobDone of one job. */
  async done(jobId: string, timeoutMs = 60_000): Promise<AgentFrame> {
    return (await this.waitFor((m) => m["@type"] === "AgentJobDone" && m["job_id"] === jobId, timeoutMs)).message;
  }

  count(type: string, jobId?: string): number {
    return this.received.filter((r) => r.message["@type"] === type && (jobId === undefined || r.message["job_id"] === jobId)).length;
  }

  /** Keeps the agent's watchdog quiet. */
  pingEvery(ms: number): () => void {
    const t = setInterval(() => {
      if (this.lastIdentity && !this.closed) void this.send({ type: "Ping" }).catch(() => {});
    }, ms);
    return () => clearInterval(t);
  }

  close(): void {
    this.closed = true;
    this.socket.close();
  }
}

export function newJob(
  jobId: string,
  over: Partial<Omit<BackendMessage & { type: "BackendNewJob" }, "type">> & { limits?: Record<string, unknown> } = {},
): BackendMessage {
  const { limits, ...rest } = over;
  return {
    type: "BackendNewJob",
    job_id: jobId,
    course_id: "test",
    task_id: "success",
    task_problems: {},
    inputdata: { "@state": "", "@lang": "en" },
    environment_type: "docker",
    environment: "default",
    environment_parameters: {
      limits: { time: 20, hard_time: 60, memory: 200, ...(limits ?? {}) },
      network_grading: false,
      run_cmd: null,
    },
    debug: false,
    ...rest,
  };
}
