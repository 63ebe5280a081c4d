/**
 * Checks a grading container's archive (base64 of a .tgz) and returns the .tgz bytes untouched.
 *
 * The archive is checked as a stream: the gzip data is inflated in 64 KiB chunks on libuv's thread
 * pool, and each chunk goes through a tar walker that keeps one 512-byte header at a time, checks
 * its checksum and size, and counts its way over the entry's data. Memory stays at a few chunks
 * whatever the archive inflates to (900 MB of zeros, about 1 MB compressed, once took the agent's
 * RSS to about 1.9 GB when it was inflated whole), and the pool thread's event loop runs its other
 * jobs between chunks. INGInious's agent only base64-decodes the archive and passes it on; we keep a
 * check so that a broken grader is told so, and never refuse an archive for its size.
 *
 * Given as the bytes of its base64 text (a view into the container's message), the archive is
 * decoded in place, 64 KiB of text at a time: the .tgz it returns is a view of the same memory, and
 * no string or buffer of the archive's size is made (a 20 MiB archive once cost a 27 MB string
 * and a 20 MB buffer beside the message that held it).
 *
 * What is checked, and why: every tar header and the gzip trailer (CRC and length) need the whole
 * stream inflated; the headers themselves cost nothing next to the inflation. A check of the first
 * headers only would miss the most likely breakage (an archive cut short), so the whole stream is
 * checked, up to a budget of inflated bytes (2 GiB by default, twice what the agent once accepted
 * at all): zeros inflate at about 1 GB/s on one core, and a 64 MiB message can inflate to some
 * 50 GB (deflate's ratio is at most about 1000:1), that is close to a minute of the agent's CPU,
 * outside any limit of the job. Past the budget the check stops, the archive is accepted with only
 * its first 2 GiB checked, and no more of it is inflated.
 */
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, gunzipSync } from "node:zlib";

export class BadArchiveError extends Error {
  constructor(detail: string) {
    super(`The grader returned a corrupt archive: ${detail}.`);
    this.name = "BadArchiveError";
  }
}

/** Inflated bytes checked before the check stops and accepts the rest unchecked. */
export const CHECK_BUDGET_BYTES = 2 * 1024 * 1024 * 1024;
/** Size of the compressed slices fed to zlib and of the chunks it inflates. */
const CHUNK_BYTES = 64 * 1024;
/** A pax extended header larger than this is skipped, not read (its `size` is then not applied). */
const MAX_PAX_BYTES = 64 * 1024;

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/;
/** Text decoded in place per slice: a multiple of 4 characters, so that each slice decodes alone. */
const TEXT_SLICE = 64 * 1024;
/** The base64 alphabet, by byte (a table: a regular expression per slice cost ten times more). */
const ALPHABET = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") ALPHABET[c.charCodeAt(0)] = 1;

/** The check ended at its budget: not an error, the archive is accepted. */
class BudgetReached extends Error {}

/**
 * Returns the archive bytes (the .tgz itself) after checking them as a stream: every tar header
 * and the gzip trailer, within `budgetBytes` of inflated data. Rejects with a BadArchiveError.
 * Base64 text given as bytes is decoded in place (they are overwritten): the result is a view of them.
 */
export async function checkArchive(base64: string | Uint8Array, budgetBytes = CHECK_BUDGET_BYTES): Promise<Buffer> {
  const tgz = fromBase64(base64);
  const walker = new TarWalker();
  const sink = new Writable({
    highWaterMark: CHUNK_BYTES,
    write(chunk: Buffer, _encoding, done) {
      try {
        walker.push(chunk);
      } catch (err) {
        return done(err as Error);
      }
      done(walker.position >= budgetBytes ? new BudgetReached() : null);
    },
  });
  try {
    await pipeline(Readable.from(slices(tgz)), createGunzip({ chunkSize: CHUNK_BYTES }), sink);
  } catch (err) {
    if (err instanceof BudgetReached) return tgz;
    if (err instanceof BadArchiveError) throw err;
    throw new BadArchiveError(`it is not gzip data (${(err as Error).message})`);
  }
  walker.end();
  return tgz;
}

/**
 * The same check done whole in memory, refusing archives over `maxUnpackedBytes`: for bytes a
 * program made itself (the bench checks its own result with it), never for a grader's archive.
 */
export function decodeArchive(base64: string, maxUnpackedBytes = 1024 * 1024 * 1024): Buffer {
  const tgz = fromBase64(base64);
  let tar: Buffer;
  try {
    tar = gunzipSync(tgz, { maxOutputLength: maxUnpackedBytes });
  } catch (err) {
    throw new BadArchiveError(`it is not gzip data (${(err as Error).message})`);
  }
  const walker = new TarWalker();
  walker.push(tar);
  walker.end();
  return tgz;
}

function fromBase64(base64: string | Uint8Array): Buffer {
  if (typeof base64 !== "string") return decodeInPlace(Buffer.from(base64.buffer, base64.byteOffset, base64.byteLength));
  if (!BASE64.test(base64)) throw new BadArchiveError("it is not base64");
  return Buffer.from(base64, "base64");
}

/**
 * Decodes base64 text over its own bytes, a slice at a time (the bytes written never pass the
 * text still to read), and returns the decoded part. Accepts what BASE64 accepts; text with line
 * breaks (allowed, never seen from INGInious's container side) is decoded whole, as a string.
 */
function decodeInPlace(text: Buffer): Buffer {
  if (text.includes(0x0a) || text.includes(0x0d)) return fromBase64(text.toString("latin1"));
  let body = text.length;
  while (body > 0 && body > text.length - 2 && text[body - 1] === 0x3d) body--; // up to two '=' at the end
  for (let i = 0; i < body; i++) if (ALPHABET[text[i]!] === 0) throw new BadArchiveError("it is not base64");
  let written = 0;
  for (let at = 0; at < body; at += TEXT_SLICE) {
    const end = Math.min(body, at + TEXT_SLICE);
    written += text.write(text.toString("latin1", at, end), written, end - at, "base64");
  }
  return text.subarray(0, written);
}

/** Views (not copies) of `buf`, CHUNK_BYTES each, so that zlib gets its input a slice at a time. */
function* slices(buf: Buffer): Generator<Buffer> {
  for (let at = 0; at < buf.length; at += CHUNK_BYTES) yield buf.subarray(at, at + CHUNK_BYTES);
}

/**
 * Follows a tar stream given in chunks of any size: checks each 512-byte header (checksum, size),
 * counts its way over the entry's data, stops looking at the first all-zero block (the end of the
 * archive). It keeps one header, and a pax extended header's data when small, nothing else.
 */
export class TarWalker {
  /** Bytes of tar data seen so far. */
  position = 0;
  private readonly header = Buffer.alloc(512);
  private filled = 0;
  /** Entry data and padding still to pass over. */
  private skip = 0;
  private ended = false;
  /** Data of a pax extended header ('x') being read, and the size it gives the next entry. */
  private pax: Buffer[] | null = null;
  private paxSize: number | null = null;

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        this.pax?.push(chunk.subarray(at, at + n));
        this.skip -= n;
        at += n;
        if (this.skip === 0 && this.pax !== null) this.readPax();
        continue;
      }
      const n = Math.min(512 - this.filled, chunk.length - at);
      chunk.copy(this.header, this.filled, at, at + n);
      this.filled += n;
      at += n;
      if (this.filled === 512) {
        this.filled = 0;
        this.readHeader(this.position + at - 512);
      }
    }
    this.position += chunk.length;
  }

  /** At the end of the data: throws unless it ended on an entry boundary or an end block. */
  end(): void {
    if (this.position === 0) throw new BadArchiveError("the tar data is empty");
    if (!this.ended && (this.filled > 0 || this.skip > 0)) throw new BadArchiveError("the tar data is truncated");
  }

  private readHeader(offset: number): void {
    const h = this.header;
    if (h.every((b) => b === 0)) {
      this.ended = true; // end-of-archive marker
      return;
    }
    const stored = parseNumber(h.subarray(148, 156));
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
    if (stored === null || stored !== sum) throw new BadArchiveError(`bad tar header checksum at byte ${offset}`);
    let size = parseNumber(h.subarray(124, 136));
    if (size === null) throw new BadArchiveError(`bad tar entry size at byte ${offset}`);
    if (this.paxSize !== null) [size, this.paxSize] = [this.paxSize, null];
    this.skip = Math.ceil(size / 512) * 512;
    const type = String.fromCharCode(h[156]!);
    this.pax = type === "x" && size > 0 && size <= MAX_PAX_BYTES ? [] : null;
  }

  /** A pax record "<len> size=<n>\n" gives the size of the next entry (files of 8 GiB and more). */
  private readPax(): void {
    const text = Buffer.concat(this.pax!).toString("utf8");
    this.pax = null;
    const m = /(?:^|\n)\d+ size=(\d+)\n/.exec(text);
    if (m) this.paxSize = Number(m[1]);
  }
}

/** An octal field, or GNU's base-256 form (first byte 0x80) for numbers too large for it. */
function parseNumber(field: Buffer): number | null {
  if (field[0] === 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return Number.isSafeInteger(n) ? n : null;
  }
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim();
  if (!/^[0-7]+$/.test(text)) return null;
  return parseInt(text, 8);
}
