/**
 * The pool's threads live only while there is work: an agent that has run no job holds none, a
 * job starts one, the thread ends after --pool-idle seconds without work, and the next job starts
 * one again and gets its result. Also: dockerode's parts the agent never uses are not loaded.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { newJob } from "./helpers/backend.js";
import { REPO } from "./helpers/agent-process.js";
import { startSession, type Session } from "./helpers/session.js";

describe("pool threads start with work and end when idle", () => {
  let s: Session;
  before(async () => {
    s = await startSession(["--pool-idle", "1"], { warm: 0 });
  });
  after(() => s?.end());

  const started = (): number => s.agent.logs.filter((l) => l.msg === "pool thread started").length;
  const ended = (): number => s.agent.logs.filter((l) => l.msg === "pool thread ended").length;

  async function succeeds(jobId: string): Promise<void> {
    await s.backend.send(newJob(jobId, { task_id: "success" }));
    const done = await s.backend.done(jobId);
    assert.equal((done["result"] as string[])[0], "success");
  }

  test("no thread before the first job, one for it, none once idle, one again for the next job", async () => {
    await s.agent.waitLog((l) => l.msg === "agent ready");
    assert.equal(started(), 0, "no pool thread before any job");
    await succeeds("pool-1");
    assert.equal(started(), 1, "the job started one pool thread");
    await s.agent.waitLog((l) => l.msg === "pool thread ended" && l["threads"] === 0, 20_000);
    await succeeds("pool-2");
    assert.equal(started(), 2, "the next job started a thread again");
    await s.agent.waitLogs((l) => l.msg === "pool thread ended", 2, 20_000);
    assert.equal(ended(), 2);
    await s.assertClean();
  });
});

describe("dockerode's unused parts", () => {
  test("importing the agent's engine client loads neither ssh2 nor gRPC, and the ssh transport still loads on use", () => {
    const engine = path.join(REPO, "dist/src/docker/engine.js");
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", `
      import { createRequire } from "node:module";
      await import(${JSON.stringify(engine)});
      const { deferredParts } = await import(${JSON.stringify(path.join(REPO, "dist/src/docker/lazy-parts.js"))});
      const require = createRequire(${JSON.stringify(engine)});
      const loaded = () => Object.keys(require.cache).filter((f) => /node_modules\\/(ssh2|@grpc)\\//.test(f)).length;
      const before = loaded();
      const ssh = require.cache[deferredParts.find((f) => f.endsWith("ssh.js"))].exports;
      const agent = ssh({ host: "127.0.0.1", port: 1, username: "nobody" });
      console.log(JSON.stringify({ deferred: deferredParts.length, before, after: loaded(), agent: typeof agent.createConnection }));
    `], { encoding: "utf8" });
    const r = JSON.parse(out) as { deferred: number; before: number; after: number; agent: string };
    assert.deepEqual({ deferred: r.deferred, before: r.before, agent: r.agent }, { deferred: 2, before: 0, agent: "function" });
    assert.ok(r.after > 0, "calling the ssh transport loaded ssh2");
  });
});
