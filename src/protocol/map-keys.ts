/**
 * Map keys that are not strings, found in msgpack bytes without decoding them. The INGInious
 * frontend stores a result's `problems`, `tests` and `custom` in MongoDB, which takes string
 * keys only: a key of another type anywhere in them (an integer, nil, bytes...) makes its
 * callback fail and leaves the submission waiting for ever. The Python agent never forwards one:
 * it reads the container's output with msgpack's strict map keys and the job crashes. The
 * walk reads bytes a MsgpackWalker accepted already (their depth is bounded).
 */
import { ARRAY, BIN, BOOL, EXT, FLOAT, Head, INT, MAP, NIL, type Kind } from "./msgpack-walk.js";
import { ViewReader } from "./msgpack-view.js";

/** The first key that is not a string: the map it is in (keys and indexes from the top) and what it is. */
export interface NonStringKey {
  path: Array<string | number>;
  key: string;
}

/** A path as `custom["a"][2]`: its first key as a name, the rest as indexes. */
export function formatPath(path: ReadonlyArray<string | number>): string {
  return path.map((p, i) => (i === 0 && typeof p === "string" ? p : `[${JSON.stringify(p)}]`)).join("");
}

/**
 * The first map key that is not a str in the value at `pos` (of bytes `b`, ending by `end`);
 * null when every key is a str.
 */
export function findNonStringKey(b: Uint8Array, pos: number, end: number): NonStringKey | null {
  const view = new ViewReader(b);
  const head = new Head();
  const walk = (at: number, path: Array<string | number>): { found: NonStringKey | null; end: number } => {
    head.read(b, at, end);
    if (head.kind !== MAP && head.kind !== ARRAY) return { found: null, end: head.end };
    const isMap = head.kind === MAP;
    const size = head.size;
    let next = head.body;
    for (let i = 0; i < size; i++) {
      let name: string | number = i;
      if (isMap) {
        const key = view.string(next, end);
        const k = head.read(b, next, end);
        if (key === null) return { found: { path, key: describeKey(view, b, k.kind, next, end) }, end };
        name = key;
        next = k.end;
      }
      const item = walk(next, [...path, name]);
      if (item.found !== null) return item;
      next = item.end;
    }
    return { found: null, end: next };
  };
  return walk(pos, []).found;
}

/** A key of another type than str, in words. */
function describeKey(view: ViewReader, b: Uint8Array, kind: Kind, at: number, end: number): string {
  const value = (): unknown => view.read(at, end).value;
  switch (kind) {
    case INT: return `the integer ${exactInt(b, at)}`;
    case FLOAT: return `the float ${String(value())}`;
    case NIL: return "nil";
    case BOOL: return `the boolean ${String(value())}`;
    case BIN: return `a bin value of ${(value() as Buffer).length} bytes`;
    case ARRAY: return "an array";
    case EXT: return "an ext value";
    default: return "a value of another type";
  }
}

/** A msgpack integer at `at`, exactly (the view reads numbers beyond 2^53 rounded). */
function exactInt(b: Uint8Array, at: number): string {
  const t = b[at]!;
  if (t <= 0x7f) return String(t);
  if (t >= 0xe0) return String(t - 0x100);
  const v = new DataView(b.buffer, b.byteOffset + at + 1);
  switch (t) {
    case 0xcc: return String(v.getUint8(0));
    case 0xcd: return String(v.getUint16(0));
    case 0xce: return String(v.getUint32(0));
    case 0xcf: return String(v.getBigUint64(0));
    case 0xd0: return String(v.getInt8(0));
    case 0xd1: return String(v.getInt16(0));
    case 0xd2: return String(v.getInt32(0));
    default: return String(v.getBigInt64(0));
  }
}
