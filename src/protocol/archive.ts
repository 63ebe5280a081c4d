/** Decodes a grading container's archive (base64 of a .tgz) and checks that it really is a gzip'd tar. */
import { gunzipSync } from "node:zlib";

export class BadArchiveError extends Error {
  constructor(detail: string) {
    super(`The grader returned a corrupt archive: ${detail}.`);
    this.name = "BadArchiveError";
  }
}

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/;

/** Returns the archive bytes (the .tgz itself) after checking every tar header inside. */
export function decodeArchive(base64: string, maxUnpackedBytes = 1024 * 1024 * 1024): Buffer {
  if (!BASE64.test(base64)) throw new BadArchiveError("it is not base64");
  const tgz = Buffer.from(base64, "base64");
  let tar: Buffer;
  try {
    tar = gunzipSync(tgz, { maxOutputLength: maxUnpackedBytes });
  } catch (err) {
    throw new BadArchiveError(`it is not gzip data (${(err as Error).message})`);
  }
  checkTar(tar);
  return tgz;
}

function checkTar(tar: Buffer): void {
  let offset = 0;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) return; // end-of-archive marker
    const stored = parseOctal(header.subarray(148, 156));
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
    if (stored === null || stored !== sum) throw new BadArchiveError(`bad tar header checksum at byte ${offset}`);
    const size = parseOctal(header.subarray(124, 136));
    if (size === null) throw new BadArchiveError(`bad tar entry size at byte ${offset}`);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  if (offset !== tar.length && tar.length !== 0) {
    throw new BadArchiveError("the tar data is truncated");
  }
  if (tar.length === 0) throw new BadArchiveError("the tar data is empty");
}

function parseOctal(field: Buffer): number | null {
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim();
  if (!/^[0-7]+$/.test(text)) return null;
  return parseInt(text, 8);
}
