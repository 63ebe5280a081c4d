/**
 * The seam between the backend link and the grading core. The core hands every message for the
 * backend to its Outbox; the link attaches its send queue when a connection opens and detaches it
 * when the connection ends, so with no link attached messages are dropped (the backend learns of
 * the agent's jobs again only through a new hello). The link in turn sees the core only as a
 * `LinkedCore`: the calls a connection makes, never the core's inner parts.
 */
import type {
  AgentHello, BackendKillJob, BackendNewJob, BadFrameError, OutgoingMessage,
} from "../protocol/messages.js";

export type MessageSink = (message: OutgoingMessage) => void;

export class Outbox {
  private sink: MessageSink | null = null;
  private muted = 0;

  /** Sends to `sink` from now on (the link, on each new connection). */
  attach(sink: MessageSink): void {
    this.sink = sink;
  }

  /** Drops messages from now on (the link's connection ended). */
  detach(): void {
    this.sink = null;
  }

  send(message: OutgoingMessage): void {
    if (this.muted === 0) this.sink?.(message);
  }

  /** Runs `work` with nothing reaching the backend meanwhile, whatever the link attaches. */
  async withoutSending<T>(work: () => Promise<T>): Promise<T> {
    this.muted++;
    try {
      return await work();
    } finally {
      this.muted--;
    }
  }
}

/** What the link asks of the core: its hello, the backend's messages, and a restart's cleanup. */
export interface LinkedCore {
  readonly outbox: Outbox;
  /** Reads the grading images again, before each hello. */
  discover(): Promise<void>;
  hello(): AgentHello;
  onNewJob(msg: BackendNewJob): void;
  onKill(msg: BackendKillJob): void;
  onBadFrame(err: BadFrameError): void;
  /** Ends every job without a word to the backend (a new identity is about to say hello). */
  abandonAll(reason: string): Promise<void>;
}
