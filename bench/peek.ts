/**
 * A msgpack skeleton reader: decodes small values and only measures big str/bin values
 * (their length and offset), so that a 40 MB AgentJobDone can be inspected in microseconds
 * without decoding or copying its payload. Used by the wire thread, whose timing must not
 * be disturbed by decoding.
 */

export interface BigValue {
  big: "str" | "bin";
  length: number;
  offset: number;
}

export function isBig(v: unknown): v is BigValue {
  return typeof v === "object" && v !== null && "big" in v && "offset" in v;
}

const textDecoder = new TextDecoder();

/** Reads one value at `pos`; str/bin longer than `bigAt` bytes come back as BigValue. */
export function peek(buf: Uint8Array, bigAt = 4096): unknown {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const need = (n: number): void => {
    if (pos + n > buf.length) throw new RangeError("truncated msgpack");
  };
  const u8 = (): number => (need(1), buf[pos++]!);
  const u16 = (): number => (need(2), (pos += 2), view.getUint16(pos - 2));
  const u32 = (): number => (need(4), (pos += 4), view.getUint32(pos - 4));
  const blob = (kind: "str" | "bin", len: number): unknown => {
    need(len);
    const offset = pos;
    pos += len;
    if (len > bigAt) return { big: kind, length: len, offset } satisfies BigValue;
    const bytes = buf.subarray(offset, offset + len);
    return kind === "str" ? textDecoder.decode(bytes) : Uint8Array.from(bytes);
  };
  const array = (n: number, depth: number): unknown[] => {
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(value(depth + 1));
    return out;
  };
  const map = (n: number, depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = value(depth + 1);
      out[String(isBig(k) ? "<big key>" : k)] = value(depth + 1);
    }
    return out;
  };
  const ext = (len: number): unknown => {
    need(1 + len);
    pos += 1 + len;
    return { ext: len };
  };
  function value(depth: number): unknown {
    if (depth > 64) throw new RangeError("msgpack nested too deeply");
    const b = u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0x80 && b <= 0x8f) return map(b & 0x0f, depth);
    if (b >= 0x90 && b <= 0x9f) return array(b & 0x0f, depth);
    if (b >= 0xa0 && b <= 0xbf) return blob("str", b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return blob("bin", u8());
      case 0xc5: return blob("bin", u16());
      case 0xc6: return blob("bin", u32());
      case 0xc7: return ext(u8());
      case 0xc8: return ext(u16());
      case 0xc9: return ext(u32());
      case 0xca: need(4); pos += 4; return view.getFloat32(pos - 4);
      case 0xcb: need(8); pos += 8; return view.getFloat64(pos - 8);
      case 0xcc: return u8();
      case 0xcd: return u16();
      case 0xce: return u32();
      case 0xcf: need(8); pos += 8; return Number(view.getBigUint64(pos - 8));
      case 0xd0: need(1); pos += 1; return view.getInt8(pos - 1);
      case 0xd1: need(2); pos += 2; return view.getInt16(pos - 2);
      case 0xd2: need(4); pos += 4; return view.getInt32(pos - 4);
      case 0xd3: need(8); pos += 8; return Number(view.getBigInt64(pos - 8));
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return ext(1 << (b - 0xd4)); // fixext 1 to 16
      case 0xd9: return blob("str", u8());
      case 0xda: return blob("str", u16());
      case 0xdb: return blob("str", u32());
      case 0xdc: return array(u16(), depth);
      case 0xdd: return array(u32(), depth);
      case 0xde: return map(u16(), depth);
      case 0xdf: return map(u32(), depth);
      default: throw new RangeError(`bad msgpack byte 0x${b.toString(16)}`);
    }
  }
  const v = value(0);
  if (pos !== buf.length) throw new RangeError(`${buf.length - pos} bytes after the msgpack value`);
  return v;
}
