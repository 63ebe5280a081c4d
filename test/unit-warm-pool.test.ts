import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BACK_TO_BACK_GAP_MS, WARM_PROBATION_SETTLE_MS, WarmPool, envKeyOf, taskDirOf, taskKeyOf, type WarmContainer,
} from "../src/jobs/warm-pool.js";

function clockPool(cap: number, windowMs = 1000): { pool: WarmPool; advance: (ms: number) => void } {
  let t = 0;
  return { pool: new WarmPool(cap, windowMs, () => t), advance: (ms) => (t += ms) };
}

let seq = 0;
function ready(pool: WarmPool, key: string, memoryMb = 100): WarmContainer {
  const w: WarmContainer = { containerId: `c${++seq}`, jobDir: `/tmp/d${seq}`, key, cpuBaselineNs: null, memoryMb, lower: null };
  pool.creationStarted(key);
  pool.creationEnded(key, w);
  return w;
}

test("only environments with recent jobs are warmed, up to the cap and the free slots", () => {
  const { pool } = clockPool(2);
  assert.deepEqual([...pool.plan(8, false)], []);
  pool.noteDemand("python", 100);
  assert.deepEqual([...pool.plan(8, false)], [["python", 2]]);
  assert.deepEqual([...pool.plan(1, false)], [["python", 1]]);
  assert.deepEqual([...pool.plan(0, false)], []);
});

test("containers ready or being made count against the cap and the free slots", () => {
  const { pool } = clockPool(3);
  pool.noteDemand("python", 100);
  ready(pool, "python");
  pool.creationStarted("python");
  assert.deepEqual([...pool.plan(8, false)], [["python", 1]]);
  // two slots free, two warm containers already stand in them
  assert.deepEqual([...pool.plan(2, false)], []);
  pool.creationEnded("python", null); // a failed creation frees its place
  assert.deepEqual([...pool.plan(8, false)], [["python", 2]]);
});

test("the most recently used environment gets the slots first", () => {
  const { pool, advance } = clockPool(2);
  pool.noteDemand("java", 100);
  advance(10);
  pool.noteDemand("python", 100);
  assert.deepEqual([...pool.plan(3, false)], [["python", 2], ["java", 1]]);
});

test("with pauses between jobs, replacements are made once the job ended, not beside it", () => {
  const { pool, advance } = clockPool(2, 60_000);
  pool.noteDemand("python", 100); // the first job: nothing ready nor under way
  assert.deepEqual([...pool.plan(8, true)], [["python", 2]], "an environment with nothing ready gets its containers at once");
  ready(pool, "python");
  ready(pool, "python");
  pool.noteJobEnded("python");
  advance(BACK_TO_BACK_GAP_MS + 500);
  pool.noteDemand("python", 100); // after a pause
  assert.ok(pool.take("python"));
  assert.deepEqual([...pool.plan(8, true)], [], "one still ready: the replacement waits while the job runs");
  assert.deepEqual([...pool.plan(8, false)], [["python", 1]], "no job running: made now");
  pool.noteJobEnded("python");
  assert.deepEqual([...pool.plan(8, false)], [["python", 1]]);
});

test("with jobs back to back, replacements are made at once: there is no pause to wait for", () => {
  const { pool, advance } = clockPool(2, 60_000);
  pool.noteDemand("python", 100);
  ready(pool, "python");
  ready(pool, "python");
  pool.noteJobEnded("python");
  advance(BACK_TO_BACK_GAP_MS - 1);
  pool.noteDemand("python", 100); // right after the previous one ended
  assert.ok(pool.take("python"));
  assert.deepEqual([...pool.plan(8, true)], [["python", 1]]);
  // while a job is open, the next one counts as back to back whatever the clock says
  advance(10_000);
  pool.noteDemand("python", 100);
  assert.deepEqual([...pool.plan(8, true)], [["python", 1]], "one still ready, yet made at once: a job of it is open");
  assert.ok(pool.take("python"));
  pool.noteJobEnded("python");
  pool.noteJobEnded("python");
  assert.deepEqual([...pool.plan(8, true)], [["python", 2]], "nothing ready nor under way: at once in any case");
  // a pause again: back to waiting for the job's end
  ready(pool, "python");
  advance(BACK_TO_BACK_GAP_MS);
  pool.noteDemand("python", 100);
  assert.deepEqual([...pool.plan(8, true)], []);
});

test("a container serves one job: take hands each out once, oldest first", () => {
  const { pool } = clockPool(2);
  pool.noteDemand("python", 100);
  const a = ready(pool, "python");
  const b = ready(pool, "python");
  assert.equal(pool.size, 2);
  assert.equal(pool.take("java"), null);
  assert.equal(pool.take("python"), a);
  assert.equal(pool.take("python"), b);
  assert.equal(pool.take("python"), null);
  assert.equal(pool.size, 0);
});

test("environments without jobs for the window go cold and their containers are handed back", () => {
  const { pool, advance } = clockPool(2, 1000);
  pool.noteDemand("python", 100);
  const w = ready(pool, "python");
  advance(999);
  assert.deepEqual(pool.stale(), []);
  advance(2);
  assert.deepEqual(pool.stale(), [w]);
  assert.equal(pool.size, 0);
  assert.deepEqual([...pool.plan(8, false)], []);
});

test("an environment whose warm containers die unused twice stays cold", () => {
  const { pool } = clockPool(2);
  pool.noteDemand("broken", 100);
  assert.equal(pool.noteEarlyDeath("broken"), false);
  assert.equal(pool.noteEarlyDeath("broken"), true);
  assert.deepEqual([...pool.plan(8, false)], []);
  pool.noteDemand("broken", 100);
  assert.deepEqual([...pool.plan(8, false)], []);
});

test("warm containers are sized like their environment's latest job", () => {
  const { pool } = clockPool(2);
  assert.equal(pool.memoryFor("python"), null);
  pool.noteDemand("python", 100);
  pool.noteDemand("python", 250);
  assert.equal(pool.memoryFor("python"), 250);
  assert.equal(pool.memoryFor("java"), null);
});

test("an environment is on probation until one of its warm containers served a job", () => {
  const { pool } = clockPool(2);
  pool.noteDemand("python", 100);
  assert.equal(pool.settleMsFor("python"), WARM_PROBATION_SETTLE_MS);
  pool.noteServed("python");
  assert.equal(pool.settleMsFor("python"), 0);
  assert.equal(pool.settleMsFor("java"), WARM_PROBATION_SETTLE_MS);
});

test("forget and drain hand back what was ready; --warm 0 plans nothing", () => {
  const { pool } = clockPool(2);
  pool.noteDemand("python", 100);
  const a = ready(pool, "python");
  const b = ready(pool, "python");
  assert.equal(pool.forget(a.containerId), a);
  assert.equal(pool.forget(a.containerId), null);
  assert.deepEqual(pool.drain(), [b]);
  const off = new WarmPool(0);
  off.noteDemand("python", 100);
  assert.equal(off.enabled, false);
  assert.deepEqual([...off.plan(8, false)], []);
});

// Heavy tasks (see the rule in warm-pool.ts): a task's own key, in the environment's cap.
const BIG = taskKeyOf("java", "/courses/c/big");
const OTHER = taskKeyOf("java", "/courses/c/other");
const SMALL = taskKeyOf("java", "/courses/c/small");

function taskPool(cap = 2, windowMs = 1000): { pool: WarmPool; advance: (ms: number) => void } {
  const made = clockPool(cap, windowMs);
  made.pool.taskKeyed = true;
  return made;
}

test("a task's key names its environment and folder", () => {
  assert.equal(envKeyOf(BIG), "java");
  assert.equal(taskDirOf(BIG), "/courses/c/big");
  assert.equal(envKeyOf("java"), "java");
  assert.equal(taskDirOf("java"), null);
});

test("a heavy task's jobs take only its own containers; a light task's only the environment's", () => {
  const { pool } = taskPool();
  pool.noteDemand("java", 100, BIG);
  pool.noteTaskWeight(BIG, true);
  pool.noteDemand("java", 100, SMALL);
  assert.equal(pool.keyFor(BIG), BIG);
  assert.equal(pool.keyFor(SMALL), "java");
  const env = ready(pool, "java");
  const big = ready(pool, BIG);
  assert.equal(pool.take(pool.keyFor(BIG)), big);
  assert.equal(pool.take(pool.keyFor(BIG)), null, "never the environment's: it would have to copy the task in");
  assert.equal(pool.take(pool.keyFor(OTHER)), env, "another task (not heavy) takes the environment's");
  ready(pool, BIG);
  assert.equal(pool.take(pool.keyFor(SMALL)), null, "never a heavy task's: its /task is that task");
});

test("replacements follow the key of the environment's latest job, all keys in one cap", () => {
  const { pool } = taskPool(2);
  pool.noteDemand("java", 100, BIG);
  assert.deepEqual([...pool.plan(8, false)], [["java", 2]], "not known heavy yet: the environment's");
  pool.noteTaskWeight(BIG, true);
  assert.deepEqual([...pool.plan(8, false)], [[BIG, 2]]);
  ready(pool, BIG);
  pool.noteDemand("java", 100, SMALL);
  assert.deepEqual([...pool.plan(8, false)], [["java", 1]], "the task's container counts in the environment's cap");
  ready(pool, "java");
  pool.noteDemand("java", 100, OTHER);
  pool.noteTaskWeight(OTHER, true);
  assert.deepEqual([...pool.plan(8, false)], [], "at the cap: many tasks never hold more than `cap` containers");
});

test("a job running holds back a replacement only when the latest job's key has one", () => {
  const { pool, advance } = taskPool(2, 60_000);
  pool.noteDemand("java", 100, SMALL);
  ready(pool, "java");
  pool.noteJobEnded("java");
  advance(BACK_TO_BACK_GAP_MS + 500);
  pool.noteDemand("java", 100, BIG);
  pool.noteTaskWeight(BIG, true);
  assert.deepEqual([...pool.plan(8, true)], [[BIG, 1]], "the environment's container is no use to the heavy task: made at once");
});

test("the environment's containers go stale once its only task turns out heavy; a task's when it has no job or is light again", () => {
  const { pool, advance } = taskPool(2, 1000);
  pool.noteDemand("java", 100, BIG);
  const env = ready(pool, "java");
  assert.deepEqual(pool.stale(), []);
  pool.noteTaskWeight(BIG, true);
  assert.deepEqual(pool.stale(), [env], "no job of a light task wants it");
  const a = ready(pool, BIG);
  advance(999);
  assert.deepEqual(pool.stale(), []);
  advance(2);
  assert.deepEqual(pool.stale(), [a], "not taken within the window");
  assert.equal(pool.keyFor(BIG), "java", "a task without jobs for the window is forgotten");
  pool.noteDemand("java", 100, BIG);
  pool.noteTaskWeight(BIG, true);
  const b = ready(pool, BIG);
  pool.noteTaskWeight(BIG, false); // say, the task now has a link the copy expands
  assert.equal(pool.keyFor(BIG), "java");
  assert.deepEqual(pool.stale(), [b]);
});

test("without layered task folders, no task is heavy", () => {
  const { pool } = clockPool(2);
  pool.noteDemand("java", 100, BIG);
  pool.noteTaskWeight(BIG, true);
  assert.equal(pool.keyFor(BIG), "java");
  assert.deepEqual([...pool.plan(8, false)], [["java", 2]]);
});

test("removal for memory takes the key whose latest job is the oldest", () => {
  const { pool, advance } = taskPool(2, 60_000);
  pool.noteDemand("java", 100, BIG);
  pool.noteTaskWeight(BIG, true);
  const big = ready(pool, BIG);
  advance(10);
  pool.noteDemand("java", 100, SMALL);
  ready(pool, "java");
  assert.equal(pool.drainOne(), big);
});
