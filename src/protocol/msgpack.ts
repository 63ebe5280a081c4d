/**
 * msgpack as INGInious's Python side speaks it (`use_bin_type=True` to pack,
 * `use_list=False, strict_map_key=False` to unpack).
 *
 * Encoding is our own small writer: JavaScript numbers cannot say "float" by
 * themselves, and INGInious needs `grade` as a float64 even when it is whole, so
 * a value wrapped in `Float64` is always written as float64; other numbers are
 * written as integers when they are safe integers. A value wrapped in `Packed` is msgpack
 * already (values the agent only forwards: a job's input, a result's problems, tests,
 * custom, state...): its bytes are written as they are, so whatever they hold (whole
 * floats, 64-bit integers, non-string keys, ext types, key order) reaches the other side
 * unchanged. Decoding is msgpack-walk.ts (checks and caps) then msgpack-view.ts (values).
 */
import { MsgpackError, MsgpackWalker, NO_OBJECT_LIMIT, type DecodeLimits } from "./msgpack-walk.js";
import { ViewReader } from "./msgpack-view.js";

/** Marks a number that must be written as a msgpack float64. */
export class Float64 {
  constructor(readonly value: number) {}
}

/**
 * One msgpack value kept as its bytes, written as they are. Between threads it travels as its
 * Uint8Array (a structured clone drops class prototypes): wrap it again on the other side.
 */
export class Packed {
  constructor(readonly bytes: Uint8Array) {}
}

export type Packable =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Float64
  | Packed
  | readonly Packable[]
  | Map<Packable, Packable>
  | { readonly [key: string]: Packable };

/**
 * Decodes one msgpack value into the agent's view (see msgpack-view.ts); throws MsgpackError on
 * truncated, malformed or trailing input, or input over `limits` (by default: no object cap,
 * nesting up to 512).
 */
export function unpack(bytes: Uint8Array, limits: DecodeLimits = NO_OBJECT_LIMIT): unknown {
  const end = new MsgpackWalker(bytes, limits).skip(0, bytes.length);
  if (end !== bytes.length) throw new MsgpackError(`${bytes.length - end} bytes after the value`);
  return new ViewReader(bytes).read(0, end).value;
}

/** Frames at least this big get a buffer of their own (never node's shared pool), so that they can be transferred. */
export const OWN_BUFFER_BYTES = 64 * 1024;

class Writer {
  private buf: Buffer;
  private pos = 0;
  constructor(initial = 256) {
    this.buf = initial >= OWN_BUFFER_BYTES ? Buffer.allocUnsafeSlow(initial) : Buffer.allocUnsafe(initial);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  string(s: string): void {
    const len = Buffer.byteLength(s, "utf8");
    this.header(len, 0xa0, 31, 0xd9, 0xda, 0xdb);
    this.ensure(len);
    this.pos += this.buf.write(s, this.pos, "utf8");
  }
  f64(v: number): void {
    this.u8(0xcb);
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }
  int(v: number | bigint): void {
    const big = BigInt(v);
    if (big >= 0n) {
      if (big < 128n) this.u8(Number(big));
      else if (big < 256n) {
        this.u8(0xcc);
        this.u8(Number(big));
      } else if (big < 65536n) {
        this.u8(0xcd);
        this.u16(Number(big));
      } else if (big < 4294967296n) {
        this.u8(0xce);
        this.u32(Number(big));
      } else if (big < 18446744073709551616n) {
        this.u8(0xcf);
        this.ensure(8);
        this.buf.writeBigUInt64BE(big, this.pos);
        this.pos += 8;
      } else throw new RangeError(`integer ${big} does not fit in msgpack`);
    } else {
      if (big >= -32n) this.u8(Number(big) & 0xff);
      else if (big >= -128n) {
        this.u8(0xd0);
        this.u8(Number(big) & 0xff);
      } else if (big >= -32768n) {
        this.u8(0xd1);
        this.ensure(2);
        this.buf.writeInt16BE(Number(big), this.pos);
        this.pos += 2;
      } else if (big >= -2147483648n) {
        this.u8(0xd2);
        this.ensure(4);
        this.buf.writeInt32BE(Number(big), this.pos);
        this.pos += 4;
      } else if (big >= -9223372036854775808n) {
        this.u8(0xd3);
        this.ensure(8);
        this.buf.writeBigInt64BE(big, this.pos);
        this.pos += 8;
      } else throw new RangeError(`integer ${big} does not fit in msgpack`);
    }
  }
  /** Writes a str/bin/array/map header: fix form when small, else 8/16/32-bit length. */
  header(len: number, fix: number, fixMax: number, h8: number, h16: number, h32: number): void {
    if (len <= fixMax && fix !== 0) {
      this.u8(fix | len);
    } else if (len < 256 && h8 !== 0) {
      this.u8(h8);
      this.u8(len);
    } else if (len < 65536) {
      this.u8(h16);
      this.u16(len);
    } else {
      this.u8(h32);
      this.u32(len);
    }
  }
  result(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function write(w: Writer, v: Packable, depth: number): void {
  if (depth > 512) throw new RangeError("value nested too deeply to pack");
  if (v === null || v === undefined) return w.u8(0xc0);
  if (v === true) return w.u8(0xc3);
  if (v === false) return w.u8(0xc2);
  if (typeof v === "string") return w.string(v);
  if (typeof v === "bigint") return w.int(v);
  if (typeof v === "number") {
    if (Number.isSafeInteger(v) && !Object.is(v, -0)) return w.int(v);
    return w.f64(v);
  }
  if (v instanceof Float64) return w.f64(v.value);
  if (v instanceof Packed) return w.bytes(v.bytes);
  if (v instanceof Uint8Array) {
    w.header(v.length, 0, 0, 0xc4, 0xc5, 0xc6);
    return w.bytes(v);
  }
  if (isArray(v)) {
    w.header(v.length, 0x90, 15, 0, 0xdc, 0xdd);
    for (const item of v) write(w, item, depth + 1);
    return;
  }
  if (v instanceof Map) {
    w.header(v.size, 0x80, 15, 0, 0xde, 0xdf);
    for (const [k, item] of v) {
      write(w, k, depth + 1);
      write(w, item, depth + 1);
    }
    return;
  }
  if (typeof v === "object") {
    const entries = Object.entries(v).filter(([, item]) => item !== undefined);
    w.header(entries.length, 0x80, 15, 0, 0xde, 0xdf);
    for (const [k, item] of entries) {
      w.string(k);
      write(w, item, depth + 1);
    }
    return;
  }
  throw new TypeError(`cannot pack a value of type ${typeof v}`);
}

/** Array.isArray, but narrowing a Packable to its read-only array member rather than to any[]. */
const isArray = Array.isArray as (v: unknown) => v is readonly Packable[];

/**
 * Bytes `v` packs to at most (each header counted at its longest): the buffer is sized once,
 * so a result of tens of MB is written without growing and copying it step by step.
 */
function packedBound(v: Packable, depth: number): number {
  if (depth > 512) throw new RangeError("value nested too deeply to pack");
  if (v === null || v === undefined || typeof v === "boolean") return 1;
  if (typeof v === "string") return 5 + Buffer.byteLength(v, "utf8");
  if (typeof v === "number" || typeof v === "bigint" || v instanceof Float64) return 9;
  if (v instanceof Uint8Array) return 5 + v.length;
  if (v instanceof Packed) return v.bytes.length;
  let n = 5;
  if (isArray(v)) {
    for (const item of v) n += packedBound(item, depth + 1);
  } else if (v instanceof Map) {
    for (const [k, item] of v) n += packedBound(k, depth + 1) + packedBound(item, depth + 1);
  } else if (typeof v === "object") {
    for (const [k, item] of Object.entries(v)) {
      n += 5 + Buffer.byteLength(k, "utf8") + packedBound(item, depth + 1);
    }
  }
  return n;
}

/**
 * Encodes a value; object keys keep their insertion order, undefined fields are left out.
 * A result of OWN_BUFFER_BYTES or more is a view at offset 0 of an ArrayBuffer of its own.
 */
export function pack(value: Packable): Buffer {
  const w = new Writer(packedBound(value, 0));
  write(w, value, 0);
  return w.result();
}
