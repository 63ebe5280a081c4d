/**
 * Unit tests for what a grading container returns: the result map checker and the archive checks.
 */
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { once } from "node:events";
import { createGzip, gzipSync } from "node:zlib";
import { BadResultError, checkGradingResult } from "../src/protocol/grading-result.js";
import { pythonRepr } from "../src/protocol/python-texts.js";
import { BadArchiveError, TarWalker, checkArchive, decodeArchive } from "../src/protocol/archive.js";
import { pack, Packed, unpack, type Packable } from "../src/protocol/msgpack.js";

/** Checks a result given as values (packed as a container would send it); kept bytes read back as values. */
function check(value: unknown): Record<string, unknown> {
  const r = checkGradingResult(pack(value as Packable)) as unknown as Record<string, unknown>;
  // the archive's base64 text is kept as its bytes
  const open = (v: unknown): unknown => (v instanceof Packed ? unpack(v.bytes) : v instanceof Uint8Array ? Buffer.from(v).toString("latin1") : v);
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, open(v)]));
}

describe("checkGradingResult", () => {
  test("defaults: an empty map is an error with grade unset", () => {
    assert.deepEqual(check({}), {
      result: "error", text: "", grade: null, problems: {}, tests: {}, custom: {}, state: "", archive: null,
      stdout: "", stderr: "",
    });
  });

  test("every accepted key with its type is kept", () => {
    const r = check({
      result: "failed", text: "t", grade: 42.5, problems: { "q-1.a_b": ["failed", "no"] }, tests: { "t*1": 3 },
      custom: { anything: { nested: true } }, state: "st", archive: "AAAA", stdout: "o", stderr: "e",
    });
    assert.deepEqual(r, {
      result: "failed", text: "t", grade: 42.5, problems: { "q-1.a_b": ["failed", "no"] }, tests: { "t*1": 3 },
      custom: { anything: { nested: true } }, state: "st", archive: "AAAA", stdout: "o", stderr: "e",
    });
  });

  test("every result kind is accepted", () => {
    for (const k of ["success", "failed", "error", "crash", "timeout", "overflow", "killed"]) {
      assert.equal(check({ result: k }).result, k);
    }
  });

  test("an integer grade and a zero grade are kept as given", () => {
    assert.equal(check({ grade: 7 }).grade, 7);
    assert.equal(check({ result: "success", grade: 0 }).grade, 0);
  });

  test("an unknown result string is refused", () => {
    for (const k of ["Success", "ok", "", "partial"]) {
      assert.throws(() => check({ result: k }), BadResultError, k);
    }
  });

  test("an unknown key is refused with the Python agent's text (its KeyError), named in the detail", () => {
    const refused = (key: string, text: string): void => {
      assert.throws(() => check({ result: "success", [key]: 1 }), (e: unknown) =>
        e instanceof BadResultError && e.message === `The grader did not return a readable output : ${text}` && e.detail === `unknown key ${JSON.stringify(key)}`);
    };
    refused("score", "'score'");
    refused("it's", `"it's"`);
    refused(`'"`, `'\\'"'`);
    refused("a\\b\nc\u0007\u00e9\u200b\u{1F600}", "'a\\\\b\\nc\\x07\u00e9\\u200b\u{1F600}'");
  });

  test("Python's repr of a str, as its KeyError prints it, for awkward keys", () => {
    const keys = ["plain", "it's", '"quoted"', `both ' and "`, "tab\tcr\rnl\n", "\u0000\u001f\u007f\u0080\u00a0\u00ad", "\u2028\u3000\ufeff", "\u{10ffff}\u{1F600}é"];
    const python = execFileSync("/usr/bin/python3", ["-c", "import json,sys; print(json.dumps([repr(k) for k in json.load(sys.stdin)]))"],
      { input: JSON.stringify(keys), encoding: "utf8" });
    assert.deepEqual(keys.map((k) => pythonRepr(k)), JSON.parse(python) as string[]);
  });

  test("each key with a wrong type is refused", () => {
    const wrong: Record<string, unknown[]> = {
      result: [1, null, ["success"]], text: [1, null, Buffer.from("x")], grade: ["100", null, NaN, Infinity, true],
      problems: [[], "x", null, Buffer.from("x")], tests: [[], 1, null], custom: [[1], "x", null], state: [1, null, {}],
      archive: [Buffer.from("x"), 1, null], stdout: [1, null], stderr: [1, null],
    };
    for (const [key, values] of Object.entries(wrong)) {
      for (const v of values) {
        assert.throws(() => check({ [key]: v }), BadResultError, `${key}=${String(v)}`);
      }
    }
  });

  test("the result itself must be a map", () => {
    for (const v of [null, [], "success", 3, Buffer.from("x")]) {
      assert.throws(() => check(v), BadResultError);
    }
  });

  const badlyFormatted = (detail: RegExp) => (e: unknown): boolean =>
    e instanceof BadResultError && e.message === "The grader did not return a readable output : Feedback file is badly formatted." && detail.test(e.detail);

  test("problem ids: letters (any case), digits, - _ . only", () => {
    assert.doesNotThrow(() => check({ problems: { "Ab-9_.x": "x" } }));
    for (const id of ["", "a b", "a/b", "a*", "é", "a\n", "q:1"]) {
      assert.throws(() => check({ problems: { [id]: "x" } }), badlyFormatted(/invalid id/), JSON.stringify(id));
    }
  });

  test("test ids may also contain *", () => {
    assert.doesNotThrow(() => check({ tests: { "A*b-1_.": 1 } }));
    for (const id of ["", "a b", "a/b", "a+b", "é"]) {
      assert.throws(() => check({ tests: { [id]: 1 } }), badlyFormatted(/invalid id/), JSON.stringify(id));
    }
  });

  test("in the map's order, as the Python agent checks: a bad id before an unknown key is badly formatted", () => {
    assert.throws(() => check({ problems: { "bad id": 1 }, zzz: 1 }), badlyFormatted(/invalid id "bad id"/));
    assert.throws(() => check({ zzz: 1, problems: { "bad id": 1 } }), /readable output : 'zzz'$/);
  });

  test("problem and test values must not be maps", () => {
    assert.throws(() => check({ problems: { q1: { result: "success" } } }), badlyFormatted(/problems\.q1 must not be a map/));
    assert.throws(() => check({ tests: { t1: {} } }), badlyFormatted(/tests\.t1 must not be a map/));
    assert.doesNotThrow(() => check({ problems: { q1: ["success", "x"], q2: "text", q3: null } }));
  });

  test("custom keys are free", () => {
    assert.doesNotThrow(() => check({ custom: { "any key / with spaces": { a: 1 } } }));
  });

  test("wrong types are badly formatted, in the Python agent's words; what is wrong is in the detail", () => {
    assert.throws(() => check({ text: 1 }), badlyFormatted(/^text has the wrong type$/));
    assert.throws(() => check({ grade: "100" }), badlyFormatted(/^grade has the wrong type$/));
  });

  test("a result that is not a map: nil is no result, others the Python agent's AttributeError", () => {
    const text = (v: unknown): string => {
      try {
        check(v);
      } catch (err) {
        return (err as Error).message.replace("The grader did not return a readable output : ", "");
      }
      return "accepted";
    };
    assert.equal(text(null), "Grading container did not return any result.");
    assert.deepEqual([[], "x", 3, 2.5, true, Buffer.from("x")].map(text), [
      "'tuple' object has no attribute 'items'", "'str' object has no attribute 'items'", "'int' object has no attribute 'items'",
      "'float' object has no attribute 'items'", "'bool' object has no attribute 'items'", "'bytes' object has no attribute 'items'",
    ]);
  });
});

/** A ustar header block with a correct checksum. */
function tarHeader(name: string, size: number, type = "0"): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100, "latin1");
  h.write("0000000\0", 108, "latin1");
  h.write("0000000\0", 116, "latin1");
  h.write(size.toString(8).padStart(11, "0") + "\0", 124, "latin1");
  h.write("14500000000\0", 136, "latin1");
  h.write(type, 156, "latin1");
  h.write("ustar\0" + "00", 257, "latin1");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return h;
}

function tarEntry(name: string, content: Buffer): Buffer {
  const pad = (512 - (content.length % 512)) % 512;
  return Buffer.concat([tarHeader(name, content.length), content, Buffer.alloc(pad)]);
}

const END = Buffer.alloc(1024);
const handTar = Buffer.concat([
  tarEntry("a.txt", Buffer.from("hello\n")),
  tarEntry("dir/", Buffer.alloc(0)),
  tarEntry("dir/b.bin", Buffer.alloc(1500, 0xab)),
  END,
]);

/** Expects `checkArchive` to refuse the base64 text with a BadArchiveError whose message matches. */
async function refused(base64: string, pattern: RegExp, what = ""): Promise<void> {
  await assert.rejects(checkArchive(base64), (err: unknown) => err instanceof BadArchiveError && pattern.test(err.message), what);
}

describe("checkArchive", () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "unit-archive-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test("a tgz made by the tar command is accepted and returned as is", async () => {
    const src = path.join(tmp, "archive");
    mkdirSync(path.join(src, "sub"), { recursive: true });
    writeFileSync(path.join(src, "feedback.txt"), "ok\n");
    writeFileSync(path.join(src, "sub", "big.bin"), Buffer.alloc(70_000, 1));
    const out = path.join(tmp, "a.tgz");
    execFileSync("tar", ["-czf", out, "-C", src, "."]);
    const tgz = readFileSync(out);
    const back = await checkArchive(tgz.toString("base64"));
    assert.ok(back.equals(tgz));
  });

  test("a hand-built tgz is accepted", async () => {
    const tgz = gzipSync(handTar);
    assert.ok((await checkArchive(tgz.toString("base64"))).equals(tgz));
  });

  test("base64 wrapped in lines (as base64.encodebytes writes it) is accepted", async () => {
    const tgz = gzipSync(handTar);
    const wrapped = tgz.toString("base64").replace(/.{76}/g, "$&\n") + "\n";
    assert.ok((await checkArchive(wrapped)).equals(tgz));
  });

  test("base64 given as bytes is decoded in place, in one slice or several, with and without padding", async () => {
    for (const size of [0, 1, 2, 3, 49_151, 49_152, 49_153, 200_000]) {
      const tgz = gzipSync(tarEntry("f", randomBytes(size)));
      for (const text of [tgz.toString("base64"), tgz.toString("base64").replace(/=+$/, "")]) {
        const message = Buffer.from(`<${text}>`, "latin1");
        const bytes = message.subarray(1, 1 + text.length);
        const back = await checkArchive(bytes);
        assert.ok(back.equals(tgz), `${size} bytes, ${text.length} characters`);
        assert.equal(back.buffer, message.buffer, "the archive is a view of the text's own memory");
        assert.equal(message[message.length - 1], 0x3e, "nothing past the text is touched");
      }
    }
  });

  test("base64 bytes with line breaks are accepted; bytes that are not base64 are refused", async () => {
    const tgz = gzipSync(handTar);
    const wrapped = tgz.toString("base64").replace(/.{76}/g, "$&\n") + "\n";
    assert.ok((await checkArchive(Buffer.from(wrapped, "latin1"))).equals(tgz));
    for (const bad of ["AB*D", "AAAA=AAA", `${"A".repeat(65_536)}=${"A".repeat(7)}`]) {
      await assert.rejects(checkArchive(Buffer.from(bad, "latin1")), /not base64/, bad.slice(0, 12));
    }
  });

  test("an empty tar archive (end blocks only) is accepted", async () => {
    await checkArchive(gzipSync(END).toString("base64"));
  });

  test("a tar without end blocks that ends on an entry boundary is accepted", async () => {
    await checkArchive(gzipSync(tarEntry("x", Buffer.from("y"))).toString("base64"));
  });

  test("text that is not base64 is refused", async () => {
    for (const s of ["not base64!", "AAAA$", "====AAAA", "a b"]) await refused(s, /not base64/, s);
  });

  test("base64 of data that is not gzip is refused", async () => {
    await refused(handTar.toString("base64"), /not gzip/);
    await refused("", /not gzip/);
  });

  test("gzip of text that is not a tar is refused", async () => {
    await refused(gzipSync(Buffer.from("hello world")).toString("base64"), /truncated/);
    await refused(gzipSync(Buffer.alloc(2048, 0x41)).toString("base64"), /checksum/);
  });

  test("gzip of nothing is refused", async () => {
    await refused(gzipSync(Buffer.alloc(0)).toString("base64"), /empty/);
  });

  test("a header with a wrong checksum is refused, at its offset", async () => {
    const t = Buffer.from(handTar);
    t[0] = t[0]! + 1; // change the name of the first entry, not its checksum
    await refused(gzipSync(t).toString("base64"), /checksum at byte 0/);
    const second = Buffer.from(handTar);
    second[1024]! += 1; // the second entry's header (after a.txt's header and its one data block)
    await refused(gzipSync(second).toString("base64"), /checksum at byte 1024/);
  });

  test("a truncated tar is refused wherever it is cut", async () => {
    const body = Buffer.concat([tarEntry("a.txt", Buffer.from("hello\n")), tarEntry("b.bin", Buffer.alloc(1500, 1))]);
    // cut inside the second entry's data, inside its header, and mid-block
    for (const cut of [512 + 512 + 512 + 100, 512 + 512 + 200, 700, 1024 + 512 + 1024]) {
      await refused(gzipSync(body.subarray(0, cut)).toString("base64"), /truncated/, `cut at ${cut}`);
    }
  });

  test("a truncated gzip stream is refused", async () => {
    const tgz = gzipSync(handTar);
    await refused(tgz.subarray(0, tgz.length - 10).toString("base64"), /not gzip/);
    await refused(tgz.subarray(0, tgz.length - 4).toString("base64"), /not gzip/); // the length of the trailer cut
  });

  test("a gzip stream with a wrong CRC is refused", async () => {
    const tgz = Buffer.from(gzipSync(handTar));
    tgz[tgz.length - 8]! ^= 0xff;
    await refused(tgz.toString("base64"), /not gzip/);
  });

  test("entries of 8 GiB and more: GNU base-256 sizes and pax sizes are followed", async () => {
    const big = 9 * 1024 ** 3;
    // base-256: the header says 9 GiB; the data is not there, so the tar is truncated, not refused for its size
    const gnu = tarHeader("huge.bin", 0);
    gnu.fill(0, 124, 136);
    gnu[124] = 0x80;
    gnu.writeUIntBE(big, 130, 6);
    gnu.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of gnu) sum += b;
    gnu.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
    await refused(gzipSync(Buffer.concat([gnu, Buffer.alloc(4096, 0x61)])).toString("base64"), /truncated/);
    // pax: an 'x' entry gives the size of the next entry, whose own size field says 0
    const record = (k: string, v: string): string => {
      const body = ` ${k}=${v}\n`;
      let n = body.length + 1;
      while (String(n).length + body.length !== n) n++;
      return `${n}${body}`;
    };
    const pax = Buffer.from(record("path", "data.bin") + record("size", "1500"));
    const withPax = Buffer.concat([
      tarHeader("PaxHeader/data.bin", pax.length, "x"), pax, Buffer.alloc(512 - pax.length),
      tarHeader("data.bin", 0), Buffer.alloc(1536, 0x62), END,
    ]);
    await checkArchive(gzipSync(withPax).toString("base64"));
    // without the pax header, the same bytes are data read as a header: refused
    await refused(gzipSync(withPax.subarray(1024)).toString("base64"), /checksum at byte 512/);
  });

  test("the walker gives the same answer whatever the chunks it is fed", () => {
    const cut = (buf: Buffer, size: number): Error | null => {
      const w = new TarWalker();
      try {
        for (let at = 0; at < buf.length; at += size) w.push(buf.subarray(at, at + size));
        w.end();
        return null;
      } catch (err) {
        return err as Error;
      }
    };
    const broken = Buffer.from(handTar);
    broken[1024]! += 1;
    for (const size of [1, 7, 511, 512, 513, 4096]) {
      assert.equal(cut(handTar, size), null, `chunks of ${size}`);
      assert.match(cut(broken, size)?.message ?? "", /checksum at byte 1024/, `chunks of ${size}`);
      assert.match(cut(handTar.subarray(0, 1600), size)?.message ?? "", /truncated/, `chunks of ${size}`);
    }
  });

  test("past its budget of inflated bytes the check stops and accepts", async () => {
    // a broken header at 1 MiB: found with the default budget, not looked at with a 64 KiB one
    const body = Buffer.concat([tarEntry("a.bin", Buffer.alloc(1024 * 1024 - 512, 1)), Buffer.alloc(512, 0x41), END]);
    const tgz = gzipSync(body);
    await refused(tgz.toString("base64"), /checksum at byte 1048576/);
    assert.ok((await checkArchive(tgz.toString("base64"), 64 * 1024)).equals(tgz));
  });

  test("900 MB of zeros is accepted with bounded memory, the event loop running meanwhile", async () => {
    const size = 900 * 1024 * 1024;
    const gz = createGzip({ level: 1, chunkSize: 64 * 1024 });
    const parts: Buffer[] = [];
    gz.on("data", (c: Buffer) => parts.push(c));
    gz.write(tarHeader("zeros", size));
    const mib = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < size / mib.length; i++) {
      if (!gz.write(mib)) await once(gz, "drain");
    }
    gz.end(END);
    await once(gz, "end");
    const base64 = Buffer.concat(parts).toString("base64");
    parts.length = 0;

    const peakBefore = process.resourceUsage().maxRSS; // kB
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    let ticks = 0;
    const sampler = setInterval(() => {
      ticks++;
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 5);
    try {
      await checkArchive(base64);
    } finally {
      clearInterval(sampler);
    }
    const peakGrowthMb = (process.resourceUsage().maxRSS - peakBefore) / 1024;
    const sampledGrowthMb = (peakRss - rssBefore) / 1024 / 1024;
    process.stdout.write(`# 900 MiB of zeros: peak RSS +${peakGrowthMb.toFixed(1)} MB, sampled RSS +${sampledGrowthMb.toFixed(1)} MB, ${ticks} timer ticks\n`);
    assert.ok(peakGrowthMb < 64, `peak RSS grew by ${peakGrowthMb} MB`);
    assert.ok(sampledGrowthMb < 64, `RSS grew by ${sampledGrowthMb} MB`);
    assert.ok(ticks > 0, "timers ran while the archive was checked");
  });
});

describe("decodeArchive (whole in memory, for an archive the program made itself)", () => {
  test("a hand-built tgz is accepted and returned as is", () => {
    const tgz = gzipSync(handTar);
    assert.ok(decodeArchive(tgz.toString("base64")).equals(tgz));
  });

  test("the same refusals as the streaming check", () => {
    const t = Buffer.from(handTar);
    t[0] = t[0]! + 1;
    assert.throws(() => decodeArchive(gzipSync(t).toString("base64")), /checksum at byte 0/);
    assert.throws(() => decodeArchive("a b"), /not base64/);
    assert.throws(() => decodeArchive(handTar.toString("base64")), /not gzip/);
    assert.throws(() => decodeArchive(gzipSync(Buffer.alloc(0)).toString("base64")), /empty/);
    assert.throws(() => decodeArchive(gzipSync(handTar.subarray(0, 700)).toString("base64")), /truncated/);
  });

  test("an archive over the unpacked size cap is refused", () => {
    const tgz = gzipSync(handTar);
    assert.throws(() => decodeArchive(tgz.toString("base64"), 1000), BadArchiveError);
  });
});
