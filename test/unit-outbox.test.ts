/**
 * Unit tests for the Outbox, the seam between the backend link and the core: what reaches the
 * link, and that nothing does while the core ends jobs without a word to the backend.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Outbox } from "../src/jobs/outbox.js";
import type { OutgoingMessage } from "../src/protocol/messages.js";

const started = (id: string): OutgoingMessage => ({ type: "AgentJobStarted", job_id: id });

describe("Outbox", () => {
  test("messages reach the attached link only, and are dropped with none", () => {
    const outbox = new Outbox();
    const got: string[] = [];
    outbox.send(started("before"));
    outbox.attach((m) => got.push(`a:${(m as { job_id: string }).job_id}`));
    outbox.send(started("one"));
    outbox.attach((m) => got.push(`b:${(m as { job_id: string }).job_id}`));
    outbox.send(started("two"));
    outbox.detach();
    outbox.send(started("after"));
    assert.deepEqual(got, ["a:one", "b:two"]);
  });

  test("nothing goes out while muted, even to a link attached meanwhile; muting nests", async () => {
    const outbox = new Outbox();
    const got: string[] = [];
    const sink = (m: OutgoingMessage): void => void got.push((m as { job_id: string }).job_id);
    outbox.attach(sink);
    await outbox.withoutSending(async () => {
      outbox.send(started("muted-1"));
      await outbox.withoutSending(() => Promise.resolve(outbox.send(started("muted-2"))));
      outbox.send(started("muted-3"));
      outbox.attach(sink);
      await new Promise((r) => setImmediate(r));
      outbox.send(started("muted-4"));
    });
    outbox.send(started("after"));
    assert.deepEqual(got, ["after"]);
  });

  test("muting ends when the work fails", async () => {
    const outbox = new Outbox();
    const got: string[] = [];
    outbox.attach((m) => void got.push((m as { job_id: string }).job_id));
    await assert.rejects(outbox.withoutSending(() => {
      return Promise.reject(new Error("boom"));
    }), /boom/);
    outbox.send(started("after"));
    assert.deepEqual(got, ["after"]);
  });
});
