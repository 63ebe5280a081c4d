/** The cgroup v2 OOM path, on recorded fixtures (this project's machines run cgroup v1). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { memoryEventsPaths, oomKills, ranOutOfMemory, type OomEvidence } from "../src/limits/oom.js";

const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/cgroup-v2/${name}`, import.meta.url), "utf8");
const inspectState = (name: string): OomEvidence["state"] => JSON.parse(fixture(name)) as OomEvidence["state"];

test("an OOM-killed container on cgroup v2 is an overflow (inspect and memory.events agree)", () => {
  const state = inspectState("oom-killed.inspect-state.json");
  const events = fixture("oom-killed.memory.events");
  assert.equal(oomKills(events), 1);
  assert.equal(ranOutOfMemory({ oomEvent: false, state, memoryEvents: events }), true);
  assert.equal(ranOutOfMemory({ oomEvent: false, state }), true);
  assert.equal(ranOutOfMemory({ oomEvent: false, state: null, memoryEvents: events }), true);
});

test("a container that exited normally is not an overflow", () => {
  const state = inspectState("normal-exit.inspect-state.json");
  const events = fixture("normal-exit.memory.events");
  assert.equal(oomKills(events), 0);
  assert.equal(ranOutOfMemory({ oomEvent: false, state, memoryEvents: events }), false);
});

test("a process OOM-killed without OOMKilled on the container is still caught by memory.events", () => {
  const state = inspectState("killed-by-sibling.inspect-state.json");
  assert.equal(ranOutOfMemory({ oomEvent: false, state }), false);
  assert.equal(ranOutOfMemory({ oomEvent: false, state, memoryEvents: fixture("killed-by-sibling.memory.events") }), true);
});

test("the engine's oom event (cgroup v1) is enough by itself", () => {
  assert.equal(ranOutOfMemory({ oomEvent: true }), true);
  assert.equal(ranOutOfMemory({ oomEvent: false }), false);
});

test("memory.events is looked for under both cgroup drivers", () => {
  assert.deepEqual(memoryEventsPaths("abc", "/cg"), [
    "/cg/system.slice/docker-abc.scope/memory.events",
    "/cg/docker/abc/memory.events",
  ]);
});
