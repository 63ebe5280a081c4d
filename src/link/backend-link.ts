/**
 * The link to the INGInious backend, on the main thread: one DEALER socket, one receive loop,
 * one serialised send queue. Says hello on connect, answers every Ping at once, and restarts
 * with a new identity when the backend has been silent for 10 s (unless autorestart is off).
 */
import { Dealer } from "zeromq";
import type { Logger } from "../log.js";
import {
  BadFrameError, decodeBackendMessage, encodeOutgoing, type OutgoingMessage,
} from "../protocol/messages.js";
import type { LinkedCore } from "../jobs/outbox.js";
import { SendQueue } from "./send-queue.js";

export interface LinkOptions {
  autorestart: boolean;
  /** Silence after which the link is restarted. */
  silenceMs: number;
}

/** Messages from the backend that may wait for the receive loop (ZeroMQ's default: 1,000). */
export const RECEIVE_HWM = 20_000;

export class BackendSilentError extends Error {}

export class BackendLink {
  private socket: Dealer | null = null;
  private queue: SendQueue | null = null;
  private lastHeard = 0;
  private stopped = false;
  private watchdog: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private silent = false;
  /** Number of times the link was opened again after silence. */
  reconnects = 0;
  /** When the backend was last heard from (performance.now() ms). */
  get lastHeardAt(): number {
    return this.lastHeard;
  }
  private lastReceived: number | null = null;
  /** When the last message from the backend arrived (performance.now() ms); unlike lastHeardAt, not reset by a new session. */
  get lastReceivedAt(): number | null {
    return this.lastReceived;
  }
  /** Told the milliseconds from reading each Ping to queueing its Pong (metrics). */
  onPingAnswered: ((ms: number) => void) | null = null;

  constructor(
    private readonly address: string,
    private readonly core: LinkedCore,
    private readonly log: Logger,
    private readonly options: LinkOptions = { autorestart: true, silenceMs: 10_000 },
  ) {}

  /** Runs until stop(); throws BackendSilentError when the backend is silent and autorestart is off. */
  async run(): Promise<void> {
    while (!this.stopped) {
      await this.session();
      if (this.stopped) return;
      if (!this.options.autorestart) {
        throw new BackendSilentError(
          `no message from the backend for ${this.options.silenceMs / 1000} s and --disable-autorestart is set: exiting`,
        );
      }
      this.reconnects++;
      await this.core.abandonAll("Agent restarted");
    }
  }

  private send(message: OutgoingMessage): void {
    this.queue?.push(encodeOutgoing(message));
  }

  private async session(): Promise<void> {
    // The backend's ROUTER drops what it cannot queue for us (1,000 messages by default): a
    // burst it sends while this thread is busy must fit on our side.
    const socket = new Dealer({ ipv6: true, linger: 1000, sendHighWaterMark: 100000, receiveHighWaterMark: RECEIVE_HWM });
    this.socket = socket;
    this.queue = new SendQueue(socket, (err) => this.log.warn({ err: err.message }, "failed to send to the backend"));
    this.silent = false;
    socket.connect(this.address);
    this.log.info({ backend: this.address }, "connecting to the backend");
    this.core.outbox.attach((m) => this.send(m));
    try {
      await this.core.discover();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "failed to list grading images; announcing the last known ones");
    }
    this.send(this.core.hello());
    this.log.info("said hello to the backend");
    this.lastHeard = performance.now();
    this.watchdog = setInterval(() => {
      if (performance.now() - this.lastHeard > this.options.silenceMs) {
        this.log.warn({ silentMs: Math.round(performance.now() - this.lastHeard) }, "backend silent for too long: restarting the link");
        this.silent = true;
        this.endSession();
      }
    }, 250);
    await Promise.race([this.receive(socket), new Promise<void>((r) => (this.wake = r))]);
    this.endSession();
  }

  private endSession(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    this.core.outbox.detach();
    if (this.socket) {
      this.queue?.close();
      this.socket.close();
      this.socket = null;
    }
    this.wake?.();
    this.wake = null;
  }

  private async receive(socket: Dealer): Promise<void> {
    try {
      for await (const frames of socket) {
        this.lastHeard = performance.now();
        this.lastReceived = this.lastHeard;
        if (frames.length !== 1) {
          this.core.onBadFrame(new BadFrameError(`expected one frame, got ${frames.length}`, null, frames.reduce((n, f) => n + f.length, 0), null));
          continue;
        }
        this.handle(frames[0]!);
      }
    } catch (err) {
      if (!this.stopped && !this.silent && this.socket === socket) {
        this.log.warn({ err: (err as Error).message }, "receive loop ended");
      }
    }
  }

  private handle(frame: Buffer): void {
    let message;
    try {
      message = decodeBackendMessage(frame);
    } catch (err) {
      if (err instanceof BadFrameError) this.core.onBadFrame(err);
      else this.log.error({ err: (err as Error).message }, "failed to read a frame");
      return;
    }
    switch (message.type) {
      case "Ping":
        this.send({ type: "Pong" });
        this.onPingAnswered?.(performance.now() - this.lastHeard);
        return;
      case "BackendNewJob":
        this.log.info({ job: message.job_id, course: message.course_id, task: message.task_id }, "received job");
        this.core.onNewJob(message);
        return;
      case "BackendKillJob":
        this.core.onKill(message);
        return;
    }
  }

  /** Closes the socket after a bounded linger (pending sends get up to 1 s). */
  async stop(): Promise<void> {
    this.stopped = true;
    // let queued messages (final results) reach the socket before closing it
    const deadline = performance.now() + 1000;
    while ((this.queue?.length ?? 0) > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.endSession();
  }
}
