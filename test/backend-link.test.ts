/** The link to the backend against a real ZeroMQ ROUTER: hello, pongs, watchdog, bad frames. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { pack } from "../src/protocol/msgpack.js";
import { encodeBackendMessage } from "../src/protocol/messages.js";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";
import { AgentProcess, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend } from "./helpers/backend.js";
import { docker, requireDocker } from "./helpers/docker.js";

const TEST_IMAGES = [
  "inginious-agent-docker/sample:latest",
  "inginious-agent-docker-test/test-dup-old:latest",
  "inginious-agent-docker-test/test-dup-new:latest",
  "inginious-agent-docker-test/test-root:latest",
  "inginious-agent-docker-test/test-hidden:latest",
  "inginious-agent-docker-test/test-oldversion:latest",
];

describe("hello and environments", () => {
  let s: Session;
  before(async () => {
    s = await startSession(["--runtime", "runc", "docker", "--runtime", "runc", "rootdocker", "root"], { images: TEST_IMAGES });
  });
  after(() => s?.end());

  test("AgentHello announces the labelled images as INGInious reads them", async () => {
    const hello = (await s.backend.waitType("AgentHello")).message;
    assert.equal(hello["available_job_slots"], 4);
    const envs = hello["available_environments"] as Record<string, Record<string, Record<string, unknown>>>;
    assert.deepEqual(Object.keys(envs).sort(), ["docker", "rootdocker"]);
    const sample = await docker.getImage("inginious-agent-docker/sample:latest").inspect();
    assert.equal(envs["docker"]!["default"]!["id"], sample.Id);
    assert.equal(envs["docker"]!["default"]!["runtime"], "runc");
    assert.equal(envs["docker"]!["default"]!["advertised"], true);
    assert.equal(typeof envs["docker"]!["default"]!["created"], "number");

    const newest = await docker.getImage("inginious-agent-docker-test/test-dup-new:latest").inspect();
    assert.equal(envs["docker"]!["test-dup"]!["id"], newest.Id, "the newest image of a name wins");

    assert.equal(envs["docker"]!["test-oldversion"], undefined, "agent_version 3 is ignored");
    assert.equal(envs["docker"]!["test-root"], undefined, "need_root only on a root runtime");
    assert.ok(envs["rootdocker"]!["test-root"], "need_root on the root runtime");
    assert.equal(envs["docker"]!["test-hidden"]!["advertised"], false, "advertise=false is announced as not advertised");
    await s.agent.waitLog((l) => /agent version 3/.test(l.msg), 5000);
  });
});

describe("pings and bad frames", () => {
  let s: Session;
  before(async () => {
    s = await startSession([], { ping: false });
  });
  after(() => s?.end());

  test("three pings get three pongs", async () => {
    const from = s.backend.received.length;
    for (let i = 0; i < 3; i++) await s.backend.send({ type: "Ping" });
    await s.backend.waitFor(() => s.backend.received.slice(from).filter((r) => r.message["@type"] === "Pong").length === 3, 5000);
  });

  test("garbage is dropped and the next ping still gets its pong", async () => {
    await s.backend.sendRaw(Buffer.from([0xc1, 0xff, 0x00, 0x13]));
    await s.backend.sendRaw(pack([1, 2, 3]));
    await s.backend.sendRaw(pack({ "@type": "NoSuchMessage" }));
    await s.backend.sendRaw(pack({ "@type": "BackendKillJob", job_id: "x" }));
    await s.backend.sendRaw(pack({ "@type": "Ping", extra: 1 }));
    const from = s.backend.received.length;
    await s.backend.send({ type: "Ping" });
    await s.backend.waitType("Pong", 5000, from);
    const dropped = await s.agent.waitLogs((l) => l.msg === "dropped a bad frame from the backend", 5, 5000);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(s.agent.logs.filter((l) => l.msg === "dropped a bad frame from the backend").length, 5, "one line per bad frame, no more");
    assert.ok(dropped.every((l) => typeof l["reason"] === "string" && typeof l["size"] === "number"));
  });

  test("a job frame with a readable job_id and a broken field gets a crash answer", async () => {
    const frame = encodeBackendMessage(newJob("broken-1"));
    const decoded = { ...(await import("../src/protocol/msgpack.js")).unpack(frame) as Record<string, unknown>, debug: 42 };
    await s.backend.sendRaw(pack(decoded));
    const done = await s.backend.done("broken-1", 5000);
    assert.deepEqual((done["result"] as unknown[])[0], "crash");
    assert.match((done["result"] as string[])[1]!, /debug/);
    assert.equal(done["grade"], 0);
  });

  test("a kill for an unknown job is answered killed with the given state", async () => {
    await s.backend.send({ type: "BackendKillJob", job_id: "never-seen", state: "st-7" });
    const done = await s.backend.done("never-seen", 5000);
    assert.deepEqual(done["result"], ["killed", ""]);
    assert.equal(done["state"], "st-7");
  });
});

describe("watchdog", () => {
  test("after 11 s of silence the agent says hello again from a new identity", async () => {
    const s = await startSession([], { ping: false });
    try {
      const first = await s.backend.waitType("AgentHello");
      const second = await s.backend.waitType("AgentHello", 20_000, s.backend.received.indexOf(first) + 1);
      assert.notDeepEqual(second.identity, first.identity);
      assert.ok(second.at - first.at >= 9_500, `restarted after ${second.at - first.at} ms`);
    } finally {
      await s.end();
    }
  });

  test("jobs running when the link restarts end without a word to the backend, and leave nothing", async () => {
    const s = await startSession([], { ping: false });
    try {
      const first = await s.backend.waitType("AgentHello");
      await s.backend.send(newJob("abandoned", { task_id: "sleep" }));
      await s.backend.waitType("AgentJobStarted", 10_000);
      const second = await s.backend.waitType("AgentHello", 20_000, s.backend.received.indexOf(first) + 1);
      assert.notDeepEqual(second.identity, first.identity);
      assert.ok(s.agent.logs.some((l) => l.msg === "abandoning running jobs"), "the job was running when the link restarted");
      assert.equal(s.backend.count("AgentJobDone", "abandoned"), 0, "the backend already failed it: no result");
      await s.assertClean();
    } finally {
      await s.end();
    }
  });

  test("with --disable-autorestart a silent backend makes the agent exit non-zero", async () => {
    await requireDocker();
    const tmp = tempDir("noauto");
    const backend = await new FakeBackend().start();
    const agent = new AgentProcess(["--tmpdir", tmp.path, "--tasks", TASKS, "--disable-autorestart", backend.address]);
    try {
      await backend.waitType("AgentHello");
      const code = await Promise.race([agent.exited, new Promise((r) => setTimeout(() => r("still running"), 20_000))]);
      assert.notEqual(code, 0);
      assert.notEqual(code, "still running");
      assert.ok(agent.logs.some((l) => /disable-autorestart/.test(l.msg)), "says why it exits");
    } finally {
      await agent.stop();
      backend.close();
      tmp.remove();
    }
  });
});
