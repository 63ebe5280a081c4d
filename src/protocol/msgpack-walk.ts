/**
 * A msgpack walker that builds nothing: it reads the bytes of one value, checks that they are
 * msgpack that Python's msgpack loads the way INGInious unpacks (`raw=False`,
 * `strict_map_key=False`), and counts what decoding them would build, so that a message can be
 * refused before anything of it is built, and spliced into another message without decoding it.
 *
 * Checked: every type byte is a msgpack one (0xc1 is not), every length stays inside the bytes,
 * every str is valid UTF-8, an ext has a type Python loads (a timestamp it accepts for -1, no other
 * negative type), no map is used as
 * (or inside) a map key (Python cannot hash a dict), nesting stays within `maxDepth` (the top value
 * is at depth 0, as in the encoder) and the number of values within `maxObjects` (every value
 * counts one: scalars, strings, arrays, maps, map keys). Map keys of any other type are accepted
 * and kept: the backend link unpacks with `strict_map_key=False`.
 */
import { isUtf8 } from "node:buffer";

/** Values (of any type, keys included) one container message may decode to. */
export const MAX_DECODED_OBJECTS = 1_000_000;
/** Nesting a message may have: the encoder's own limit (the top value is at depth 0). */
export const MAX_DECODED_DEPTH = 512;

export interface DecodeLimits {
  maxObjects: number;
  maxDepth: number;
}
export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxObjects: MAX_DECODED_OBJECTS, maxDepth: MAX_DECODED_DEPTH };
/** For bytes already walked, or trusted: only the depth bound that keeps recursion safe. */
export const NO_OBJECT_LIMIT: DecodeLimits = { maxObjects: Infinity, maxDepth: MAX_DECODED_DEPTH };

/** Bytes that are not msgpack Python could load. */
export class MsgpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MsgpackError";
  }
}
/** Well-formed msgpack whose decoded form would be over a cap. */
export class MsgpackLimitError extends MsgpackError {
  constructor(message: string) {
    super(message);
    this.name = "MsgpackLimitError";
  }
}

export const NIL = 0, BOOL = 1, INT = 2, FLOAT = 3, STR = 4, BIN = 5, EXT = 6, ARRAY = 7, MAP = 8;
export type Kind = typeof NIL | typeof BOOL | typeof INT | typeof FLOAT | typeof STR | typeof BIN | typeof EXT | typeof ARRAY | typeof MAP;

/** One value's header, read in place (one instance is reused: reading builds nothing). */
export class Head {
  kind: Kind = NIL;
  /** Items of an array or map; payload bytes of anything else. */
  size = 0;
  /** Where the payload (or the first item) starts. */
  body = 0;
  /** The type byte of an ext. */
  extType = 0;

  /** Reads the header at `pos`; throws MsgpackError when it does not fit before `end`. */
  read(b: Uint8Array, pos: number, end: number): this {
    if (pos >= end) throw truncated();
    const t = b[pos]!;
    if (t <= 0x7f || t >= 0xe0) return this.set(INT, 0, pos + 1);
    if (t <= 0x8f) return this.set(MAP, t & 0x0f, pos + 1);
    if (t <= 0x9f) return this.set(ARRAY, t & 0x0f, pos + 1);
    if (t <= 0xbf) return this.set(STR, t & 0x1f, pos + 1);
    switch (t) {
      case 0xc0: return this.set(NIL, 0, pos + 1);
      case 0xc2: case 0xc3: return this.set(BOOL, 0, pos + 1);
      case 0xc4: return this.set(BIN, uint(b, pos + 1, 1, end), pos + 2);
      case 0xc5: return this.set(BIN, uint(b, pos + 1, 2, end), pos + 3);
      case 0xc6: return this.set(BIN, uint(b, pos + 1, 4, end), pos + 5);
      case 0xc7: return this.ext(b, uint(b, pos + 1, 1, end), pos + 2, end);
      case 0xc8: return this.ext(b, uint(b, pos + 1, 2, end), pos + 3, end);
      case 0xc9: return this.ext(b, uint(b, pos + 1, 4, end), pos + 5, end);
      case 0xca: return this.set(FLOAT, 4, pos + 1);
      case 0xcb: return this.set(FLOAT, 8, pos + 1);
      case 0xcc: case 0xd0: return this.set(INT, 1, pos + 1);
      case 0xcd: case 0xd1: return this.set(INT, 2, pos + 1);
      case 0xce: case 0xd2: return this.set(INT, 4, pos + 1);
      case 0xcf: case 0xd3: return this.set(INT, 8, pos + 1);
      case 0xd4: return this.ext(b, 1, pos + 1, end);
      case 0xd5: return this.ext(b, 2, pos + 1, end);
      case 0xd6: return this.ext(b, 4, pos + 1, end);
      case 0xd7: return this.ext(b, 8, pos + 1, end);
      case 0xd8: return this.ext(b, 16, pos + 1, end);
      case 0xd9: return this.set(STR, uint(b, pos + 1, 1, end), pos + 2);
      case 0xda: return this.set(STR, uint(b, pos + 1, 2, end), pos + 3);
      case 0xdb: return this.set(STR, uint(b, pos + 1, 4, end), pos + 5);
      case 0xdc: return this.set(ARRAY, uint(b, pos + 1, 2, end), pos + 3);
      case 0xdd: return this.set(ARRAY, uint(b, pos + 1, 4, end), pos + 5);
      case 0xde: return this.set(MAP, uint(b, pos + 1, 2, end), pos + 3);
      case 0xdf: return this.set(MAP, uint(b, pos + 1, 4, end), pos + 5);
      default: throw new MsgpackError(`byte 0x${t.toString(16)} at ${pos} starts no msgpack value`);
    }
  }

  /** Where a scalar, str, bin or ext ends (not meaningful for arrays and maps). */
  get end(): number {
    return this.body + this.size;
  }

  private set(kind: Kind, size: number, body: number): this {
    this.kind = kind;
    this.size = size;
    this.body = body;
    return this;
  }

  private ext(b: Uint8Array, size: number, typeAt: number, end: number): this {
    if (typeAt >= end) throw truncated();
    this.extType = (b[typeAt]! << 24) >> 24;
    return this.set(EXT, size, typeAt + 1);
  }
}

function truncated(): MsgpackError {
  return new MsgpackError("truncated msgpack");
}

function uint(b: Uint8Array, at: number, n: number, end: number): number {
  if (at + n > end) throw truncated();
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[at + i]!;
  return v;
}

/** Python's msgpack refuses a timestamp (ext -1) of another size, or with 10^9 nanoseconds or more. */
function checkTimestamp(b: Uint8Array, at: number, size: number): void {
  let ns = 0;
  if (size === 8) ns = uint(b, at, 4, at + 4) >>> 2;
  else if (size === 12) ns = uint(b, at, 4, at + 4);
  else if (size !== 4) throw new MsgpackError(`a timestamp (ext -1) of ${size} bytes`);
  if (ns >= 1e9) throw new MsgpackError("a timestamp (ext -1) with 10^9 nanoseconds or more");
}

/** Walks values, sharing one count of what they would decode to. */
export class MsgpackWalker {
  /** Values walked so far. */
  objects = 0;
  /** When false, values are counted past maxObjects without throwing (see `decodeContainerMessage`). */
  enforceObjects = true;
  private readonly head = new Head();
  private readonly remaining: number[] = [];
  private readonly isMap: boolean[] = [];

  constructor(
    private readonly b: Uint8Array,
    private readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
    /** False for bytes walked before: skip the UTF-8 and timestamp checks. */
    private readonly check = true,
  ) {}

  /**
   * Walks the value at `pos` (itself at `depth`, a map key when `asKey`), which must end by `end`;
   * returns where it ends.
   */
  skip(pos: number, end: number, depth = 0, asKey = false): number {
    const b = this.b, h = this.head, rem = this.remaining, isMap = this.isMap;
    const { maxDepth, maxObjects } = this.limits;
    rem.length = 0;
    isMap.length = 0;
    let keyFrame = -1; // the outermost open frame entered as a map key
    do {
      const top = rem.length - 1;
      const isKey = top >= 0 ? isMap[top]! && rem[top]! % 2 === 0 : asKey;
      if (top >= 0) rem[top]!--;
      if (depth + rem.length > maxDepth) throw new MsgpackLimitError(`nested deeper than ${maxDepth} levels`);
      if (++this.objects > maxObjects && this.enforceObjects) {
        throw new MsgpackLimitError(`more than ${maxObjects} values`);
      }
      h.read(b, pos, end);
      if (h.kind === ARRAY || h.kind === MAP) {
        if (h.kind === MAP && (isKey || keyFrame >= 0)) throw new MsgpackError("a map used as a map key");
        const items = h.kind === MAP ? 2 * h.size : h.size;
        pos = h.body;
        if (items > end - pos) throw truncated(); // every item takes a byte at least
        if (items > 0) {
          rem.push(items);
          isMap.push(h.kind === MAP);
          if (isKey && keyFrame < 0) keyFrame = rem.length - 1;
        }
      } else {
        pos = h.end;
        if (pos > end) throw truncated();
        if (this.check && h.kind === STR && !isUtf8(b.subarray(h.body, pos))) {
          throw new MsgpackError(`a str that is not valid UTF-8 at ${h.body}`);
        }
        if (this.check && h.kind === EXT && h.extType < 0) {
          if (h.extType !== -1) throw new MsgpackError(`an ext of type ${h.extType} (Python's msgpack loads -1 and 0 to 127 only)`);
          checkTimestamp(b, h.body, h.size);
        }
      }
      while (rem.length > 0 && rem[rem.length - 1] === 0) {
        rem.pop();
        isMap.pop();
        if (keyFrame >= rem.length) keyFrame = -1;
      }
    } while (rem.length > 0);
    return pos;
  }
}

/** Checks that `b` holds exactly one value within the limits (throws MsgpackError otherwise). */
export function walkOne(b: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): void {
  const end = new MsgpackWalker(b, limits).skip(0, b.length);
  if (end !== b.length) throw new MsgpackError(`${b.length - end} bytes after the value`);
}

/**
 * Calls `each` for every entry of the map at `pos` with where its key and value start and end
 * (no key or value is decoded); returns where the map ends, or -1 when the value is not a map.
 */
export function forEachEntry(
  b: Uint8Array,
  pos: number,
  end: number,
  each: (keyAt: number, valueAt: number, valueEnd: number) => void,
  walker: MsgpackWalker = new MsgpackWalker(b, NO_OBJECT_LIMIT, false),
  depth = 0,
): number {
  const h = new Head().read(b, pos, end);
  if (h.kind !== MAP) return -1;
  walker.objects++;
  let at = h.body;
  for (let i = 0; i < h.size; i++) {
    const valueAt = walker.skip(at, end, depth + 1, true);
    const valueEnd = walker.skip(valueAt, end, depth + 1);
    each(at, valueAt, valueEnd);
    at = valueEnd;
  }
  return at;
}
