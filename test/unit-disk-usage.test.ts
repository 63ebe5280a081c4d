/** Unit tests for the disk limit: what the walk counts (hard links once) and how its own time paces it. */
import { after, afterEach, before, describe, mock, test } from "node:test";
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DISK_POLL_BASE_MS, diskUsage, nextDiskPollMs, watchDisk } from "../src/limits/disk-usage.js";

const MB = 1024 * 1024;

describe("nextDiskPollMs", () => {
  test("a quick walk is followed by the base pause", () => {
    assert.equal(nextDiskPollMs(0), DISK_POLL_BASE_MS);
    assert.equal(nextDiskPollMs(3), 250);
    assert.equal(nextDiskPollMs(25), 250);
  });

  test("a slow walk is followed by ten times its own time", () => {
    assert.equal(nextDiskPollMs(26), 260);
    assert.equal(nextDiskPollMs(100), 1000);
    assert.equal(nextDiskPollMs(2000), 20_000);
    assert.equal(nextDiskPollMs(100, 50, 4), 400);
  });
});

describe("diskUsage", () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), "iad-disk-"));
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  async function tree(name: string, make: (dir: string) => Promise<void>): Promise<string> {
    const dir = path.join(root, name);
    await fs.mkdir(path.join(dir, "sub"), { recursive: true });
    await make(dir);
    return dir;
  }
  const data = Buffer.alloc(4 * MB, 7);

  test("a file with several hard links counts once, within a tree and across roots", async () => {
    const one = await tree("one", (d) => fs.writeFile(path.join(d, "f"), data));
    const linked = await tree("linked", async (d) => {
      await fs.writeFile(path.join(d, "f"), data);
      for (const n of ["a", "b", "sub/c"]) await fs.link(path.join(d, "f"), path.join(d, n));
    });
    const copies = await tree("copies", async (d) => {
      for (const n of ["f", "a", "b", "sub/c"]) await fs.writeFile(path.join(d, n), data);
    });
    const base = await diskUsage([one]);
    assert.ok(base >= 4 * MB, `a 4 MB file counts at least 4 MB, got ${base}`);
    assert.ok((await diskUsage([copies])) >= 16 * MB, "four copies count four times");
    const withLinks = await diskUsage([linked]);
    assert.ok(withLinks < base + MB, `four names of one file count once: ${withLinks} vs ${base}`);
    const other = path.join(root, "other");
    await fs.mkdir(other);
    await fs.link(path.join(linked, "f"), path.join(other, "f"));
    assert.ok((await diskUsage([linked, other])) < base + MB, "a link in a second root counts once too");
  });

  test("stops early once over the budget", async () => {
    // 300 files of 64 kB each
    const small = Buffer.alloc(64 * 1024, 7);
    const big = await tree("big", async (d) => {
      for (let i = 0; i < 300; i++) await fs.writeFile(path.join(d, `f${i}`), small);
    });
    const all = await diskUsage([big]);
    assert.ok(all >= 300 * small.length);
    const seen = await diskUsage([big], MB);
    assert.ok(seen > MB, "over the budget");
    assert.ok(seen < all / 2, `the walk went on past the budget: ${seen} of ${all}`);
  });
});

describe("watchDisk pacing", () => {
  afterEach(() => mock.timers.reset());

  /** A walk that takes `walkMs` of a fake clock and answers `bytes`; counts its calls. */
  function fakeWalk(walkMs: number, bytes: () => number) {
    let clock = 0;
    const calls: number[] = [];
    return {
      calls,
      now: () => clock,
      usage: (): Promise<number> => {
        calls.push(clock);
        clock += walkMs;
        return Promise.resolve(bytes());
      },
    };
  }
  const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
  async function tick(ms: number): Promise<void> {
    mock.timers.tick(ms);
    await settle();
  }

  test("the next walk waits ten times as long as the last one took", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    const walk = fakeWalk(100, () => 0);
    const w = watchDisk(() => ["/nowhere"], MB, () => assert.fail("not over"), { usage: walk.usage, now: walk.now });
    await tick(249);
    assert.equal(walk.calls.length, 0);
    await tick(1);
    assert.equal(walk.calls.length, 1, "first walk after the base pause");
    await tick(999);
    assert.equal(walk.calls.length, 1, "a 100 ms walk is not followed by another within 1 s");
    await tick(1);
    assert.equal(walk.calls.length, 2);
    w.stop();
    await tick(10_000);
    assert.equal(walk.calls.length, 2, "no walk after stop()");
  });

  test("quick walks come every base pause", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    const walk = fakeWalk(2, () => 0);
    const w = watchDisk(() => [], MB, () => {}, { usage: walk.usage, now: walk.now });
    for (let i = 0; i < 4; i++) await tick(250);
    assert.equal(walk.calls.length, 4);
    w.stop();
  });

  test("a walk that throws is reported to onError and the next walk runs as usual", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    const walk = fakeWalk(1, () => 0);
    let asked = 0;
    const roots = (): string[] => {
      if (++asked === 1) throw new Error("no roots yet");
      return [];
    };
    const errors: string[] = [];
    const w = watchDisk(roots, MB, () => {}, { usage: walk.usage, now: walk.now, onError: (e) => errors.push(e.message) });
    await tick(250);
    assert.deepEqual(errors, ["no roots yet"]);
    await tick(250);
    assert.equal(walk.calls.length, 1, "the walk after the failed one ran");
    w.stop();
  });

  test("over the limit: one call, then no more walks", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    let bytes = 0;
    const walk = fakeWalk(1, () => bytes);
    const over: number[] = [];
    const w = watchDisk(() => [], MB, (b) => over.push(b), { usage: walk.usage, now: walk.now });
    await tick(250);
    bytes = 2 * MB;
    await tick(250);
    assert.deepEqual(over, [2 * MB]);
    assert.equal(w.exceeded, true);
    assert.equal(w.peakBytes, 2 * MB);
    await tick(5000);
    assert.equal(walk.calls.length, 2, "no walk once over");
    w.stop();
  });
});
