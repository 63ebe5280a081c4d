/** Splits a byte stream of newline-separated JSON values (Docker's events and stats) and parses each line. */
import { StringDecoder } from "node:string_decoder";

export class JsonLineSplitter {
  private pending = "";
  /** Keeps a UTF-8 character split across two chunks whole. */
  private readonly decoder = new StringDecoder("utf8");

  /** Returns the values completed by this chunk; lines that do not parse are handed to onBadLine. */
  push(chunk: Buffer | string, onBadLine: (line: string, err: Error) => void = () => {}): unknown[] {
    this.pending += typeof chunk === "string" ? chunk : this.decoder.write(chunk);
    const out: unknown[] = [];
    let nl: number;
    while ((nl = this.pending.indexOf("\n")) >= 0) {
      const line = this.pending.slice(0, nl).trim();
      this.pending = this.pending.slice(nl + 1);
      if (line === "") continue;
      try {
        out.push(JSON.parse(line));
      } catch (err) {
        onBadLine(line, err as Error);
      }
    }
    if (this.pending.length > 16 * 1024 * 1024) {
      onBadLine(this.pending.slice(0, 200), new Error("line longer than 16 MiB"));
      this.pending = "";
    }
    return out;
  }
}
