/**
 * The grading container's output as the agent reads it: Docker's attach stream
 * (8-byte frame headers: stream id, 3 zero bytes, uint32 BE size) carrying, on
 * stdout, messages framed as uint32 BE length + msgpack map with a `type` key.
 * Messages may be split across frames and several may share one frame.
 *
 * Pure and incremental: feed chunks as they arrive, get whole messages out.
 *
 * A message of BIG_MESSAGE_BYTES or more gets its buffer as soon as its length is read, and the
 * stream's chunks are copied into it as they come: the chunks are not kept until the message is
 * whole and then copied (which held a big result twice).
 *
 * Each message is walked before anything of it is built (msgpack-walk.ts): one that is not
 * msgpack Python would load, or whose decoded form would be over the caps in values or depth,
 * ends the stream with a ContainerStreamError. A message of a type the agent does not use is
 * skipped unbuilt. A `result` message keeps its `result` as bytes, for grading-result.ts.
 */
import { ByteQueue } from "./byte-queue.js";
import { pack, type Packable } from "./msgpack.js";
import {
  DEFAULT_DECODE_LIMITS, forEachEntry, Head, MAP, MsgpackLimitError, MsgpackWalker, type DecodeLimits,
} from "./msgpack-walk.js";
import { ViewReader } from "./msgpack-view.js";

/** Default cap on one container message; results with 20 MB archives and 20 MB of stdout fit. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Messages at least this big are filled in place as their bytes come (see the header). */
export const BIG_MESSAGE_BYTES = 1024 * 1024;

/** How much of the end of a container's stderr is kept (for the log of a job that ends without a result). */
export const STDERR_TAIL_BYTES = 4096;

export class ContainerStreamError extends Error {
  constructor(
    message: string,
    /**
     * The Python agent could not read this either (not msgpack, cut short): it stops reading, and
     * a job without a result so far ends with its no-result text. False for what it reads on
     * (a message over our caps, a message that is not a map or has no type, which it skips).
     */
    readonly pythonCannotRead = false,
  ) {
    super(message);
    this.name = "ContainerStreamError";
  }
}

export interface ContainerMessage {
  type: string;
  [key: string]: unknown;
}

export class ContainerStreamDecoder {
  private readonly frames = new ByteQueue();
  private readonly stdout = new ByteQueue();
  /** Bytes still expected for the current Docker frame, and its stream id. */
  private frameRemaining = 0;
  private frameStream = 0;
  private stderrBytes = 0;
  private stderrLast: Buffer = Buffer.alloc(0);
  /** A big message being filled (its length read already), and how much of it has come. */
  private filling: Buffer | null = null;
  private filled = 0;

  constructor(
    private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
    private readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  ) {}

  /** Bytes the container wrote on stderr (counted; only the last STDERR_TAIL_BYTES are kept). */
  get stderrSeen(): number {
    return this.stderrBytes;
  }

  /** The last STDERR_TAIL_BYTES of the container's stderr, as text (without a character cut in two at its start). */
  get stderrTail(): string {
    let start = 0;
    if (this.stderrBytes > this.stderrLast.length) {
      while (start < this.stderrLast.length && start < 3 && (this.stderrLast[start]! & 0xc0) === 0x80) start++;
    }
    return this.stderrLast.subarray(start).toString("utf8");
  }

  /** True when no partial frame or message is pending: the stream may end here cleanly. */
  get idle(): boolean {
    return this.frameRemaining === 0 && this.frames.length === 0 && this.stdout.length === 0 && this.filling === null;
  }

  /** Feeds raw attach-stream bytes; returns the messages completed by them. Throws ContainerStreamError. */
  push(chunk: Buffer): ContainerMessage[] {
    this.frames.push(chunk);
    const out: ContainerMessage[] = [];
    for (;;) {
      if (this.frameRemaining === 0) {
        if (this.frames.length < 8) break;
        const header = this.frames.take(8);
        const stream = header[0]!;
        if (stream > 2 || header[1] !== 0 || header[2] !== 0 || header[3] !== 0) {
          throw new ContainerStreamError(
            `broken Docker stream frame header ${header.toString("hex")}`,
          );
        }
        this.frameStream = stream;
        this.frameRemaining = header.readUInt32BE(4);
        continue;
      }
      const n = Math.min(this.frameRemaining, this.frames.length);
      if (n === 0) break;
      const payload = this.frames.take(n);
      this.frameRemaining -= n;
      if (this.frameStream === 2) this.keepStderr(payload);
      else if (this.frameStream === 1) this.onStdout(payload, out);
    }
    return out;
  }

  /** Counts stderr bytes and keeps the last STDERR_TAIL_BYTES, in a buffer of its own (memory stays bounded). */
  private keepStderr(payload: Buffer): void {
    this.stderrBytes += payload.length;
    const joined = payload.length >= STDERR_TAIL_BYTES ? payload : Buffer.concat([this.stderrLast, payload]);
    this.stderrLast = Buffer.from(joined.subarray(Math.max(0, joined.length - STDERR_TAIL_BYTES)));
  }

  /** Stdout bytes: into the big message being filled, else queued and cut into messages. */
  private onStdout(payload: Buffer, out: ContainerMessage[]): void {
    let at = 0;
    if (this.filling !== null) {
      at = Math.min(payload.length, this.filling.length - this.filled);
      payload.copy(this.filling, this.filled, 0, at);
      this.filled += at;
      if (this.filled < this.filling.length) return;
      const message = this.filling;
      this.filling = null;
      out.push(decodeContainerMessage(message, this.limits));
    }
    if (at < payload.length) this.stdout.push(at === 0 ? payload : payload.subarray(at));
    this.drainMessages(out);
  }

  private drainMessages(out: ContainerMessage[]): void {
    while (this.stdout.length >= 4) {
      const len = this.stdout.peek(4).readUInt32BE(0);
      if (len > this.maxMessageBytes) {
        throw new ContainerStreamError(
          `the grading container sent a message of ${len} bytes, over the agent's limit of ${this.maxMessageBytes} bytes`,
        );
      }
      if (this.stdout.length < 4 + len) {
        if (len >= BIG_MESSAGE_BYTES) this.startFilling(len);
        break;
      }
      this.stdout.take(4);
      out.push(decodeContainerMessage(this.stdout.take(len), this.limits));
    }
  }

  /** Moves what came of a big message into a buffer of its full length, which the next bytes fill. */
  private startFilling(len: number): void {
    this.stdout.take(4);
    const have = this.stdout.length;
    this.filling = Buffer.allocUnsafeSlow(len);
    if (have > 0) this.stdout.take(have).copy(this.filling, 0);
    this.filled = have;
  }

  /** Called when the stream ends: throws if it stopped in the middle of a frame or message. */
  end(): void {
    if (this.frameRemaining > 0 || this.frames.length > 0) {
      throw new ContainerStreamError("the grading container's output stopped in the middle of a frame", true);
    }
    if (this.stdout.length > 0 || this.filling !== null) {
      throw new ContainerStreamError("the grading container's output stopped in the middle of a message", true);
    }
  }
}

/** The message types the agent acts on; any other is skipped without being built. */
export const CONTAINER_MESSAGE_TYPES: ReadonlySet<string> = new Set(["result", "run_student", "ssh_debug", "ssh_student"]);

/**
 * Walks one message, then builds it: `{type}` alone for a type the agent does not use,
 * `{type: "result", result: <the msgpack bytes of its result>}`, or every field decoded for
 * the others. The object cap is enforced from the moment a known type is read (INGInious puts
 * `type` first), and checked at the end either way.
 */
export function decodeContainerMessage(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): ContainerMessage {
  const fail = (why: string, pythonCannotRead = false): never => {
    throw new ContainerStreamError(`the grading container sent a message that ${why}`, pythonCannotRead);
  };
  const view = new ViewReader(bytes);
  const walker = new MsgpackWalker(bytes, limits);
  walker.enforceObjects = false;
  let type: string | null = null;
  let result: [number, number] | null = null;
  let end: number;
  try {
    if (new Head().read(bytes, 0, bytes.length).kind !== MAP) fail("is not a map");
    end = forEachEntry(bytes, 0, bytes.length, (keyAt, valueAt, valueEnd) => {
      const key = view.string(keyAt, valueAt);
      if (key === "type") {
        type = view.string(valueAt, valueEnd);
        walker.enforceObjects = type !== null && CONTAINER_MESSAGE_TYPES.has(type);
      } else if (key === "result") result = [valueAt, valueEnd];
    }, walker);
  } catch (err) {
    if (err instanceof ContainerStreamError) throw err;
    if (err instanceof MsgpackLimitError) return fail(`decodes to too much (${err.message})`);
    return fail(`is not msgpack (${(err as Error).message})`, true);
  }
  if (end !== bytes.length) fail("has bytes after its end", true);
  if (type === null) return fail("has no type");
  if (!CONTAINER_MESSAGE_TYPES.has(type)) return { type };
  if (walker.objects > limits.maxObjects) fail(`decodes to too much (more than ${limits.maxObjects} values)`);
  if (type === "result") {
    const at = result as [number, number] | null;
    return { type, result: at === null ? undefined : bytes.subarray(at[0], at[1]) };
  }
  const fields = view.read(0, end).value as Record<string, unknown>;
  return { ...fields, type };
}

/** Frames a message for a container's stdin: uint32 BE length + msgpack. */
export function encodeContainerMessage(message: { type: string } & Record<string, Packable>): Buffer {
  const body = pack(message);
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}
