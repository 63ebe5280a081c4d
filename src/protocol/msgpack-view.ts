/**
 * The agent's decoded view of msgpack: JavaScript values for the few fields the agent reads
 * itself (ids, limits, a result's `result`, `text`, `grade`, `archive`). Values it only forwards
 * are never decoded: they travel as their bytes (see `Packed` in msgpack.ts), so this view may be
 * lossy where JavaScript is: every number is a `number` (a whole float reads like an integer, an
 * integer beyond 2^53 is rounded), a map is a plain object whose non-string keys read as strings
 * (`1` as "1"), an ext is `{ extType, data }`. str is a string, bin a Buffer of its own (never a
 * view of the input), an array an array.
 *
 * Only bytes a MsgpackWalker accepted are given to it (depth and size are bounded there).
 */
import { ARRAY, BIN, BOOL, EXT, FLOAT, Head, INT, MAP, NIL, STR } from "./msgpack-walk.js";

export interface MsgpackExt {
  extType: number;
  data: Buffer;
}

export class ViewReader {
  private readonly buf: Buffer;
  private readonly head = new Head();

  constructor(b: Uint8Array) {
    this.buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Decodes the value at `pos`; returns it and where it ends. */
  read(pos: number, end: number): { value: unknown; end: number } {
    const out = { value: undefined as unknown, end: 0 };
    out.value = this.value(pos, end, out);
    return out;
  }

  /** The str at `pos`, or null when the value there is not a str. */
  string(pos: number, end: number): string | null {
    const h = this.head.read(this.buf, pos, end);
    return h.kind === STR ? this.buf.toString("utf8", h.body, h.end) : null;
  }

  private value(pos: number, end: number, out: { end: number }): unknown {
    const b = this.buf;
    const h = this.head.read(b, pos, end);
    const { kind, size, body } = h;
    out.end = h.end;
    switch (kind) {
      case NIL: return null;
      case BOOL: return b[pos] === 0xc3;
      case INT: return readInt(b, pos, size);
      case FLOAT: return size === 4 ? b.readFloatBE(body) : b.readDoubleBE(body);
      case STR: return b.toString("utf8", body, body + size);
      case BIN: return Buffer.from(b.subarray(body, body + size));
      case EXT: return { extType: h.extType, data: Buffer.from(b.subarray(body, body + size)) } satisfies MsgpackExt;
      case ARRAY: {
        const items: unknown[] = new Array(size);
        let at = body;
        for (let i = 0; i < size; i++) {
          items[i] = this.value(at, end, out);
          at = out.end;
        }
        out.end = at;
        return items;
      }
      case MAP: {
        const map: Record<string, unknown> = {};
        let at = body;
        for (let i = 0; i < size; i++) {
          const key = this.value(at, end, out);
          const item = this.value(out.end, end, out);
          at = out.end;
          const name = typeof key === "string" ? key : String(key);
          // a key named __proto__ is a key like any other, never the object's prototype
          if (name === "__proto__") Object.defineProperty(map, name, { value: item, enumerable: true, writable: true, configurable: true });
          else map[name] = item;
        }
        out.end = at;
        return map;
      }
    }
  }
}

function readInt(b: Buffer, pos: number, size: number): number {
  const t = b[pos]!;
  if (size === 0) return t >= 0xe0 ? t - 0x100 : t;
  const signed = t >= 0xd0;
  switch (size) {
    case 1: return signed ? b.readInt8(pos + 1) : b.readUInt8(pos + 1);
    case 2: return signed ? b.readInt16BE(pos + 1) : b.readUInt16BE(pos + 1);
    case 4: return signed ? b.readInt32BE(pos + 1) : b.readUInt32BE(pos + 1);
    default: return Number(signed ? b.readBigInt64BE(pos + 1) : b.readBigUInt64BE(pos + 1));
  }
}
