/**
 * The backend's main-thread half: starts the wire thread (bench/wire.ts, a ZeroMQ ROUTER that
 * only sends, receives and timestamps), sends jobs through it and resolves each with its
 * AgentJobDone as a JobRecord (or a failed record after a time-out), keeps every Ping->Pong
 * round trip it reports, and asks it to check one big result fully. Problems the thread sees
 * (decoding errors, unexpected messages) are kept for the run's `problems`.
 */
import { Worker } from "node:worker_threads";
import type { BackendNewJob } from "../src/protocol/messages.js";
import { now, sleep } from "./stats.js";
import type { DoneEvent, WireCommand, WireEvent } from "./wire.js";

export interface JobRecord {
  id: string;
  ok: boolean;
  result: string;
  text: string;
  sentAt: number;
  doneAt: number;
  size: number;
  archiveBytes: number;
  archiveIsGzip: boolean;
  stdoutBytes: number;
}

export class Wire {
  readonly worker: Worker;
  readonly pongs: Array<{ sentAt: number; rtt: number; behindBig: boolean }> = [];
  readonly problems: string[] = [];
  address: Promise<string>;
  hello: Promise<Extract<WireEvent, { ev: "hello" }>>;
  private helloResolve!: (e: Extract<WireEvent, { ev: "hello" }>) => void;
  private readonly sentAt = new Map<string, number>();
  private readonly waiting = new Map<string, (d: DoneEvent) => void>();
  private verifyResolve: ((v: { ok: boolean; detail: string }) => void) | null = null;

  constructor() {
    this.worker = new Worker(new URL("./wire.js", import.meta.url), { workerData: { pingEveryMs: 100 } });
    let addressResolve!: (a: string) => void;
    let addressReject!: (e: Error) => void;
    this.address = new Promise((res, rej) => ((addressResolve = res), (addressReject = rej)));
    this.hello = new Promise((res) => (this.helloResolve = res));
    this.worker.on("error", (err) => {
      this.problems.push(`wire thread failed: ${err.message}`);
      addressReject(err);
    });
    this.worker.on("message", (e: WireEvent) => {
      switch (e.ev) {
        case "ready":
          addressResolve(e.address);
          return;
        case "hello":
          this.helloResolve(e);
          return;
        case "sent":
          this.sentAt.set(e.id, e.at);
          return;
        case "pong":
          this.pongs.push({ sentAt: e.sentAt, rtt: e.rtt, behindBig: e.behindBig });
          return;
        case "done": {
          const w = this.waiting.get(e.id);
          if (w) {
            this.waiting.delete(e.id);
            w(e);
          }
          return;
        }
        case "verified":
          this.verifyResolve?.(e);
          this.verifyResolve = null;
          return;
        case "error":
          if (this.problems.length < 20) this.problems.push(e.message);
          return;
        case "other":
          if (e.type !== "AgentHello" && this.problems.length < 20) this.problems.push(`unexpected message from the agent: ${e.type}`);
          return;
        case "started":
          return;
      }
    });
  }

  private post(c: WireCommand): void {
    this.worker.postMessage(c);
  }

  /** Sends a job and resolves with its AgentJobDone (or a failed record after `timeoutMs`). */
  job(msg: BackendNewJob, timeoutMs: number): Promise<JobRecord> {
    const id = msg.job_id;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({
          id, ok: false, result: "no answer", text: `no AgentJobDone within ${timeoutMs / 1000} s`,
          sentAt: this.sentAt.get(id) ?? now(), doneAt: now(), size: 0, archiveBytes: 0, archiveIsGzip: false, stdoutBytes: 0,
        });
      }, timeoutMs);
      this.waiting.set(id, (d) => {
        clearTimeout(timer);
        const sentAt = this.sentAt.get(id) ?? d.at;
        this.sentAt.delete(id);
        resolve({
          id, ok: d.result === "success", result: d.result, text: d.text, sentAt, doneAt: d.at, size: d.size,
          archiveBytes: d.archiveBytes, archiveIsGzip: d.archiveIsGzip, stdoutBytes: d.stdoutBytes,
        });
      });
      this.post({ cmd: "job", id, msg });
    });
  }

  pings(on: boolean): void {
    this.post({ cmd: "pings", on });
  }

  verifyKept(): Promise<{ ok: boolean; detail: string }> {
    return new Promise((resolve) => {
      this.verifyResolve = resolve;
      this.post({ cmd: "verifyKept" });
    });
  }

  pongsBetween(t0: number, t1: number, which: "all" | "notBehindBig" | "behindBig" = "all"): number[] {
    return this.pongs
      .filter((p) => p.sentAt >= t0 && p.sentAt <= t1)
      .filter((p) => which === "all" || (which === "behindBig") === p.behindBig)
      .map((p) => p.rtt);
  }

  async close(): Promise<void> {
    this.post({ cmd: "close" });
    await Promise.race([new Promise((r) => this.worker.once("exit", r)), sleep(2000)]);
    await this.worker.terminate();
  }
}
