/**
 * What the agent sends, read by an independent peer written in Python with INGInious's own
 * decoding options, which checks field names and types as strictly as the backend relies on them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { AgentProcess, REPO, TASKS, tempDir } from "./helpers/agent-process.js";
import { engineContainers, eventually, requireDocker } from "./helpers/docker.js";

const PYTHON = "/usr/bin/python3"; // Debian's, with python3-zmq and python3-msgpack

const job = (id: string, over: Record<string, unknown> = {}) => ({
  send: {
    "@type": "BackendNewJob", job_id: id, course_id: "test", task_id: "success", task_problems: {},
    inputdata: { q1: "x", "@state": "" }, environment_type: "docker", environment: "default",
    environment_parameters: { limits: { time: 10, hard_time: 30, memory: 100 }, network_grading: false, run_cmd: null },
    debug: false, ...over,
  },
});

test("a strict Python backend accepts everything the agent sends", async () => {
  await requireDocker();
  const tmp = tempDir("strict");
  const agentDir = path.join(tmp.path, "agent");
  const before = await engineContainers([agentDir]);
  const script = [
    { wait: "AgentHello", timeout: 30 },
    { ping_every: 0.5 },
    { send: { "@type": "Ping" } },
    { wait: "Pong", timeout: 5 },
    job("strict-ok"),
    { wait: "AgentJobStarted", match: { job_id: "strict-ok" }, timeout: 10 },
    { wait: "AgentJobDone", match: { job_id: "strict-ok" }, timeout: 60 },
    job("strict-failed", { task_id: "failed" }),
    { wait: "AgentJobDone", match: { job_id: "strict-failed" }, timeout: 60 },
    job("strict-crash", { environment: "nope" }),
    { wait: "AgentJobDone", match: { job_id: "strict-crash" }, timeout: 10 },
    { send: { "@type": "BackendKillJob", job_id: "strict-unknown", state: "s" } },
    { wait: "AgentJobDone", match: { job_id: "strict-unknown" }, timeout: 10 },
  ];
  const scriptFile = path.join(tmp.path, "script.json");
  writeFileSync(scriptFile, JSON.stringify(script));
  const peer = spawn(PYTHON, [path.join(REPO, "test/peers/strict_backend.py"), "--bind", "tcp://127.0.0.1:*", "--script", scriptFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = "";
  peer.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  let pending = "";
  let bound: (addr: string) => void;
  const address = new Promise<string>((r) => (bound = r));
  peer.stdout.on("data", (c: Buffer) => {
    pending += c.toString();
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = JSON.parse(pending.slice(0, nl)) as Record<string, unknown>;
      pending = pending.slice(nl + 1);
      lines.push(line);
      if (typeof line["bound"] === "string") bound(line["bound"]);
    }
  });
  const exited = new Promise<number | null>((r) => peer.on("exit", r));
  let agent: AgentProcess | null = null;
  try {
    const addr = await Promise.race([
      address,
      exited.then(() => {
        throw new Error(`the Python peer did not start: ${stderr}`);
      }),
    ]);
    agent = new AgentProcess([addr, "--tmpdir", agentDir, "--tasks", TASKS, "--concurrency", "2"]);
    const code = await exited;
    const frames = lines.filter((l) => "type" in l && "ok" in l);
    const bad = frames.filter((l) => l["ok"] !== true);
    assert.deepEqual(bad, [], "every frame passes the strict checks");
    assert.equal(code, 0, `peer exit status; last lines: ${JSON.stringify(lines.slice(-3))} ${stderr}`);
    const types = new Set(frames.map((l) => l["type"]));
    for (const t of ["AgentHello", "Pong", "AgentJobStarted", "AgentJobDone"]) assert.ok(types.has(t), `saw ${t}`);
    const done = frames.find((l) => l["type"] === "AgentJobDone" && (l["message"] as Record<string, unknown>)["job_id"] === "strict-ok");
    assert.deepEqual((done!["message"] as Record<string, unknown>)["result"], ["success", "Well done: you wrote x"]);
  } finally {
    peer.kill();
    await agent?.stop();
    await eventually(async () => assert.deepEqual(await engineContainers([agentDir]), before));
    tmp.remove();
  }
});
