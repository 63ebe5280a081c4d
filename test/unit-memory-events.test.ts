/**
 * memory.events as followMemoryEvents keeps it (src/limits/oom.ts), on a file of its own here:
 * with Docker's systemd driver a container's cgroup goes as soon as the container dies, and some
 * engines leave State.OOMKilled false, so an OOM kill is known only if the text was read between
 * the kill and the cgroup's end, which can be much less than the once-a-second read. A change is
 * read when the kernel tells of it (inotify), and a kill counted before the following began is read
 * at its start.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { followEventsFile, oomKills } from "../src/limits/oom.js";

const events = (kills: number): string => `low 0\nhigh 0\nmax ${kills * 3}\noom ${kills}\noom_kill ${kills}\noom_group_kill 0\n`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("following a container's memory.events", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "iad-memevents-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a kill that the file shows for 50 ms before it goes is seen", async () => {
    const file = path.join(dir, "memory.events");
    writeFileSync(file, events(0));
    const follower = followEventsFile([path.join(dir, "other-driver", "memory.events"), file]);
    await sleep(100);
    writeFileSync(file, events(1));
    await sleep(50);
    unlinkSync(file); // the cgroup ends with the container
    await sleep(50);
    follower.stop();
    assert.equal(oomKills(follower.last() ?? ""), 1);
  });

  test("a kill counted before the following began is seen, though the file goes at once", async () => {
    const file = path.join(dir, "memory.events");
    writeFileSync(file, events(1));
    const follower = followEventsFile([file]);
    unlinkSync(file);
    await sleep(50);
    follower.stop();
    assert.equal(oomKills(follower.last() ?? ""), 1);
  });

  test("a text that counts fewer kills never replaces one that counts more", async () => {
    const file = path.join(dir, "memory.events");
    writeFileSync(file, events(2));
    const follower = followEventsFile([file]);
    writeFileSync(file, events(0));
    await sleep(50);
    follower.stop();
    unlinkSync(file);
    assert.equal(oomKills(follower.last() ?? ""), 2);
  });
});
