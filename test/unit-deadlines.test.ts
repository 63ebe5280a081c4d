/** Timers from a job's values are clamped (no overflow), and engine calls end at their deadline with a named error. */
import { test } from "node:test";
import assert from "node:assert/strict";
import type Docker from "dockerode";
import { pino } from "pino";
import { EngineTimeoutError, WAIT_MARGIN_MS, waitDeadlineMs, withDeadline } from "../src/docker/deadline.js";
import { watchLimits } from "../src/limits/container-watch.js";
import { MAX_TIMER_MS, clampTimerMs, within } from "../src/limits/timers.js";

const DAY_MS = 24 * 3600 * 1000;
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test("clampTimerMs keeps delays Node honours and clamps the rest", () => {
  assert.equal(clampTimerMs(1500), 1500);
  assert.equal(clampTimerMs(0.2), 1);
  assert.equal(clampTimerMs(-5), 0);
  assert.equal(clampTimerMs(30 * DAY_MS), MAX_TIMER_MS);
  assert.equal(clampTimerMs(Infinity), MAX_TIMER_MS);
  assert.equal(clampTimerMs(NaN), MAX_TIMER_MS);
  assert.equal(MAX_TIMER_MS, 2 ** 31 - 1);
});

test("a wall limit of 30 days does not kill the container at once", async () => {
  let kills = 0;
  const container = { kill: () => Promise.resolve(void kills++), stats: () => Promise.reject(new Error("no stats here")) } as unknown as Docker.Container;
  const watch = watchLimits(container, { cpuSeconds: 30 * 86400, wallSeconds: 30 * 86400, statsDelayMs: 30 * DAY_MS }, pino({ level: "silent" }));
  // An overflowed timer fires after 1 ms: long before this one.
  await tick(100);
  watch.stop();
  assert.equal(kills, 0);
  assert.equal(watch.exceeded, null);
});

test("a short wall limit still kills", async () => {
  let kills = 0;
  const container = { kill: () => Promise.resolve(void kills++) } as unknown as Docker.Container;
  const watch = watchLimits(container, { cpuSeconds: 30, wallSeconds: 0.01, statsDelayMs: 30 * DAY_MS }, pino({ level: "silent" }));
  while (watch.exceeded === null) await tick(5);
  watch.stop();
  assert.equal(watch.exceeded, "wall");
  assert.equal(kills, 1);
});

test("wait's deadline is the wall limit plus the margin, clamped", () => {
  assert.equal(waitDeadlineMs(10), 10_000 + WAIT_MARGIN_MS);
  assert.equal(waitDeadlineMs(30 * 86400), MAX_TIMER_MS);
});

test("withDeadline: a call that never answers rejects with the call's name, and its request is aborted", async () => {
  let signal: AbortSignal | null = null;
  const err = await withDeadline("start", 20, (s) => {
    signal = s;
    return new Promise<never>(() => {});
  }).catch((e: unknown) => e);
  assert.ok(err instanceof EngineTimeoutError);
  assert.equal(err.call, "start");
  assert.match(err.message, /did not answer "start" within 20 ms/);
  assert.equal(signal!.aborted, true);
});

test("withDeadline: answers and errors pass through, and the signal is not aborted", async () => {
  let signal: AbortSignal | null = null;
  assert.equal(await withDeadline("inspect", 1000, (s) => ((signal = s), Promise.resolve(42))), 42);
  await assert.rejects(withDeadline("remove", 1000, () => Promise.reject(new Error("no such container"))), /no such container/);
  await tick(10);
  assert.equal(signal!.aborted, false);
});

test("within: the value, or the fallback after the delay or on rejection", async () => {
  assert.equal(await within(Promise.resolve(1), 1000, 0), 1);
  assert.equal(await within(new Promise<number>(() => {}), 10, 7), 7);
  assert.equal(await within(Promise.reject(new Error("x")), 1000, 9), 9);
});
