/**
 * The deciding parts of the operator features, on their own: names of Docker calls, the Docker
 * error hook (in this thread and relayed from a worker), health with its cached ping, metrics
 * from agent events, the self-check messages, the terminal log format, the env parsers.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import Docker from "dockerode";
import type { AgentEvents } from "../src/jobs/observed.js";
import { ConfigValueError, parseEnvBoolean, parseListenPort } from "../src/config.js";
import {
  callName, errorStatus, instrumentDocker, listenForDockerErrors, type DockerErrorReport,
} from "../src/ops/docker-errors.js";
import { HealthChecker } from "../src/ops/health.js";
import { createAgentMetrics } from "../src/ops/metrics.js";
import { formatLogLine } from "../src/ops/pretty-log.js";
import {
  cgroupAdvice, containerCgroupDir, containerEvidence, dockerUnreachableMessage, gradingImageAdvice,
  hostPathVerdict, shouldProbeHostPath, tasksProblem, tmpdirProblem,
} from "../src/ops/self-checks.js";

function scratch(): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "iad-ops-unit-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

describe("Docker error counting", () => {
  test("calls are named with bounded labels", () => {
    const id = "a".repeat(64);
    assert.equal(callName("POST", `/containers/${id}/kill?`), "POST /containers/{id}/kill");
    assert.equal(callName("DELETE", `/containers/${id}?force=true&v=true`), "DELETE /containers/{id}");
    assert.equal(callName("POST", "/containers/create?name=x"), "POST /containers/create");
    assert.equal(callName("GET", "/containers/json?all=1"), "GET /containers/json");
    assert.equal(callName("GET", "/images/inginious-agent-docker/sample:latest/json"), "GET /images/{id}/json");
    assert.equal(callName("DELETE", "/images/some/repo"), "DELETE /images/{id}");
    assert.equal(callName("GET", "/_ping"), "GET /_ping");
    assert.equal(callName("GET", "/v1.41/info"), "GET /info");
    assert.equal(callName("POST", `/exec/${id}/start`), "POST /exec/{id}/start");
  });

  test("statuses are the HTTP status or the socket error code", () => {
    assert.equal(errorStatus({ statusCode: 404, message: "no such container" }), "404");
    assert.equal(errorStatus({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" }), "ECONNREFUSED");
    assert.equal(errorStatus(new Error("timeout")), "timeout");
    assert.equal(errorStatus(new Error("what")), "error");
  });

  test("a hooked client reports each failed call and still fails it", async () => {
    const reports: DockerErrorReport[] = [];
    const client = instrumentDocker(new Docker({ socketPath: "/nonexistent-iad-ops.sock" }), (r) => reports.push(r));
    instrumentDocker(client, (r) => reports.push(r)); // idempotent: counted once
    await assert.rejects(client.ping());
    await assert.rejects(client.getContainer("b".repeat(64)).kill());
    assert.deepEqual(reports, [
      { call: "GET /_ping", status: "ENOENT" },
      { call: "POST /containers/{id}/kill", status: "ENOENT" },
    ]);
  });

  test("a worker thread's reports reach the main thread's listener", async () => {
    const got: DockerErrorReport[] = [];
    const stop = listenForDockerErrors((r) => got.push(r));
    try {
      const moduleUrl = new URL("../src/ops/docker-errors.js", import.meta.url).href;
      const worker = new Worker(
        `import(${JSON.stringify(moduleUrl)}).then((m) => m.relayDockerError({ call: "POST /containers/{id}/start", status: "500" }));`,
        { eval: true },
      );
      await new Promise((resolve) => worker.once("exit", resolve));
      const deadline = Date.now() + 5000;
      while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(got, [{ call: "POST /containers/{id}/start", status: "500" }]);
    } finally {
      stop();
    }
  });
});

describe("health", () => {
  function fakes(over: { heard?: number | null; events?: boolean; ping?: () => Promise<unknown> } = {}) {
    let clock = 1000;
    const state = { heard: over.heard === undefined ? 1000 : over.heard, events: over.events ?? true };
    const checker = new HealthChecker(
      {
        lastBackendMessageAt: () => state.heard,
        dockerEventsAlive: () => state.events,
        docker: { ping: over.ping ?? (() => Promise.resolve("OK")) },
      },
      { now: () => clock, dockerTimeoutMs: 200 },
    );
    return { checker, state, advance: (ms: number) => (clock += ms), now: () => clock };
  }

  test("all good: ok, and the engine is pinged at most once per 5 s", async () => {
    const f = fakes();
    for (let i = 0; i < 20; i++) assert.equal((await f.checker.check()).status, "ok");
    assert.equal(f.checker.pings, 1);
    f.advance(5001);
    await f.checker.check();
    assert.equal(f.checker.pings, 2);
  });

  test("a silent backend fails the backend check, with a reason", async () => {
    const f = fakes();
    f.advance(10_500);
    const r = await f.checker.check();
    assert.equal(r.status, "failing");
    assert.deepEqual(r.failing, ["backend"]);
    assert.match(r.reasons[0]!, /^backend: no message from the backend for 10\.5 s/);
    f.state.heard = f.now();
    assert.equal((await f.checker.check()).status, "ok");
  });

  test("a backend never heard gets 10 s from the start", async () => {
    const f = fakes({ heard: null });
    assert.equal((await f.checker.check()).status, "ok");
    f.advance(11_000);
    const r = await f.checker.check();
    assert.deepEqual(r.failing, ["backend"]);
    assert.match(r.reasons[0]!, /since the agent started/);
  });

  test("an engine that fails or hangs, and a closed event stream, fail their checks", async () => {
    const failing = fakes({ ping: () => Promise.reject(new Error("connect ENOENT /var/run/docker.sock")), events: false });
    const r = await failing.checker.check();
    assert.deepEqual(r.failing, ["docker", "docker_events"]);
    assert.match(r.reasons.join("\n"), /ENOENT/);
    const hanging = fakes({ ping: () => new Promise(() => {}) });
    const h = await hanging.checker.check();
    assert.deepEqual(h.failing, ["docker"]);
    assert.match(h.reasons[0]!, /no answer within 0.2 s/);
  });
});

describe("metrics", () => {
  test("closed jobs are counted by result, their phases observed, and values read at scrape time", async () => {
    const observed = new EventEmitter<AgentEvents>();
    let running = 3;
    let reconnects = 0;
    const m = createAgentMetrics({
      observed, concurrency: 4,
      runningJobs: () => running, queuedJobs: () => 2, warmContainers: () => 1, layeredTasks: () => true, taskFolderMode: () => "layers-dir-metacopy",
      memoryUsableMb: 1000, memoryReservedMb: () => 600, jobsWaitingForMemory: () => 1, studentsWaitingForMemory: () => 0,
      backendReconnects: () => reconnects, lastBackendMessageAt: () => performance.now(),
      dockerEventRestarts: () => 1, dockerEventsAlive: () => true, dockerUp: () => Promise.resolve(true),
      info: { version: "t", agent: "a1", friendly_name: "f" },
    });
    try {
      observed.emit("jobClosed", { jobId: "j1", result: "success", totalMs: 1500, queueMs: 10, timings: { prepare: 5, run: 1200 } });
      observed.emit("jobClosed", { jobId: "j2", result: "crash", totalMs: 0, queueMs: null, timings: {} });
      m.dockerError({ call: "POST /containers/{id}/kill", status: "404" });
      m.pingAnswered(0.00002);
      reconnects = 2;
      let text = await m.registry.metrics();
      assert.match(text, /^inginious_agent_jobs_total\{result="success"\} 1$/m);
      assert.match(text, /^inginious_agent_jobs_total\{result="crash"\} 1$/m);
      assert.match(text, /^inginious_agent_jobs_total\{result="timeout"\} 0$/m);
      assert.match(text, /^inginious_agent_job_queue_wait_seconds_count 1$/m);
      assert.match(text, /^inginious_agent_job_phase_seconds_count\{phase="run"\} 1$/m);
      assert.match(text, /^inginious_agent_job_phase_seconds_sum\{phase="run"\} 1.2$/m);
      assert.match(text, /^inginious_agent_jobs_running 3$/m);
      assert.match(text, /^inginious_agent_jobs_queued 2$/m);
      assert.match(text, /^inginious_agent_free_slots 1$/m);
      assert.match(text, /^inginious_agent_warm_containers 1$/m);
      assert.match(text, /^inginious_agent_memory_usable_bytes 1048576000$/m);
      assert.match(text, /^inginious_agent_memory_reserved_bytes 629145600$/m);
      assert.match(text, /^inginious_agent_jobs_waiting_for_memory 1$/m);
      assert.match(text, /^inginious_agent_student_containers_waiting_for_memory 0$/m);
      assert.match(text, /^inginious_agent_docker_errors_total\{call="POST \/containers\/\{id\}\/kill",status="404"\} 1$/m);
      assert.match(text, /^inginious_agent_backend_reconnects_total 2$/m);
      assert.match(text, /^inginious_agent_docker_event_stream_restarts_total 1$/m);
      assert.match(text, /^inginious_agent_ping_pong_delay_seconds_count 1$/m);
      assert.match(text, /^nodejs_eventloop_lag_p99_seconds /m);
      running = 6;
      reconnects = 3;
      text = await m.registry.metrics();
      assert.match(text, /^inginious_agent_free_slots 0$/m);
      assert.match(text, /^inginious_agent_backend_reconnects_total 3$/m);
    } finally {
      m.close();
    }
  });
});

describe("self-check messages", () => {
  test("Docker unreachable: the address and a fix for each kind of failure", () => {
    const enoent = dockerUnreachableMessage(Object.assign(new Error("connect ENOENT /var/run/docker.sock"), { code: "ENOENT" }), "unix:///var/run/docker.sock");
    assert.match(enoent, /Docker is not reachable at unix:\/\/\/var\/run\/docker\.sock/);
    assert.match(enoent, /systemctl start docker/);
    const eacces = dockerUnreachableMessage(Object.assign(new Error("connect EACCES"), { code: "EACCES" }), "unix:///x.sock");
    assert.match(eacces, /docker group/);
    const refused = dockerUnreachableMessage(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), "tcp://h:2375");
    assert.match(refused, /nothing listens there/);
  });

  test("no grading image: a warning saying how to get one, and what was ignored", () => {
    assert.equal(gradingImageAdvice(1, 0), null);
    assert.equal(gradingImageAdvice(2, 5), null);
    const none = gradingImageAdvice(0, 0)!;
    assert.match(none, /no grading image found/);
    assert.match(none, /images\/build\.sh/);
    assert.match(none, /org\.inginious\.grading\.agent_version=4/);
    assert.match(gradingImageAdvice(0, 2)!, /2 image\(s\) labelled org\.inginious\.grading\.name were found but none fits/);
  });

  test("cgroup: nothing on v1; on v2 a warning about memory.oom.group, stronger when memory.events cannot be read", () => {
    assert.equal(cgroupAdvice({ version: "1", driver: "cgroupfs", eventsDir: "/sys/fs/cgroup/docker", eventsDirProblem: null }), null);
    const readable = cgroupAdvice({ version: "2", driver: "systemd", eventsDir: containerCgroupDir("systemd"), eventsDirProblem: null })!;
    assert.match(readable, /memory\.oom\.group at 0/);
    assert.match(readable, /\/sys\/fs\/cgroup\/system\.slice/);
    const blind = cgroupAdvice({ version: "2", driver: "cgroupfs", eventsDir: containerCgroupDir("cgroupfs"), eventsDirProblem: "/sys/fs/cgroup/docker does not exist here" })!;
    assert.match(blind, /cannot read here/);
    assert.match(blind, /--cgroupns=host/);
  });

  test("--tmpdir not the same directory for the engine: fatal with the mount to add", () => {
    assert.deepEqual(hostPathVerdict("/var/lib/a", "found"), { same: true });
    const other = hostPathVerdict("/var/lib/a", "missing-file");
    assert.equal(other.same, false);
    assert.match((other as { message: string }).message, /not the same directory.*-v \/var\/lib\/a:\/var\/lib\/a/s);
    const absent = hostPathVerdict("/var/lib/a", "missing-dir");
    assert.match((absent as { message: string }).message, /does not exist on the Docker engine's host/);
    assert.deepEqual(hostPathVerdict("/var/lib/a", { error: "boom" }), { same: null, reason: "boom" });
  });

  test("whether the agent runs in a container, and whether to probe", () => {
    const s = scratch();
    try {
      assert.equal(containerEvidence(s.dir), null);
      writeFileSync(path.join(s.dir, ".dockerenv"), "");
      assert.equal(containerEvidence(s.dir), "weak");
      mkdirSync(path.join(s.dir, "proc/self"), { recursive: true });
      writeFileSync(path.join(s.dir, "proc/self/mountinfo"),
        `612 590 8:1 /var/lib/docker/containers/${"c".repeat(64)}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n`);
      assert.equal(containerEvidence(s.dir), "strong");
    } finally {
      s.remove();
    }
    assert.equal(shouldProbeHostPath("strong", "abc", "abc"), true);
    assert.equal(shouldProbeHostPath("weak", "vm", "vm"), false, "a VM keeping /.dockerenv, talking to its own engine");
    assert.equal(shouldProbeHostPath("weak", "3f2a9c1b", "host1"), true);
    assert.equal(shouldProbeHostPath(null, "a", "b"), false);
  });

  test("--tmpdir: a file, or a directory under a file, is not writable; a new directory is created", async () => {
    const s = scratch();
    try {
      const file = path.join(s.dir, "a-file");
      writeFileSync(file, "");
      assert.match((await tmpdirProblem(file))!, /--tmpdir .*a-file is not writable \((ENOTDIR|EEXIST): it, or one of its parents, is a file/);
      assert.match((await tmpdirProblem(path.join(file, "sub")))!, /is not writable/);
      assert.equal(await tmpdirProblem(path.join(s.dir, "new", "dir")), null);
    } finally {
      s.remove();
    }
  });

  test("--tasks missing or not a directory: a warning", async () => {
    const s = scratch();
    try {
      assert.equal(await tasksProblem(s.dir), null);
      assert.match((await tasksProblem(path.join(s.dir, "nope")))!, /does not exist \(yet\): jobs will end as crash/);
      writeFileSync(path.join(s.dir, "f"), "");
      assert.match((await tasksProblem(path.join(s.dir, "f")))!, /is not a directory/);
    } finally {
      s.remove();
    }
  });
});

describe("terminal logs", () => {
  test("a pino line becomes time, level, message, job, container, then the other fields", () => {
    const line = JSON.stringify({
      level: 40, time: "2026-01-02T10:11:12.345Z", pid: 1, name: "inginious-agent-docker",
      job: "j-1", container: "d".repeat(64), err: "no such container", ms: 12, msg: "failed to remove container",
    });
    assert.equal(formatLogLine(line, false),
      `10:11:12.345 WARN  failed to remove container  job=j-1 container=dddddddddddd err="no such container" ms=12`);
    const coloured = formatLogLine(line, true);
    assert.ok(coloured.includes("\x1b[33mWARN \x1b[0m"), coloured);
    assert.equal(formatLogLine("not json", false), "not json");
  });
});

describe("env parsers", () => {
  test("booleans and listen ports", () => {
    for (const v of ["1", "true", "YES", "on"]) assert.equal(parseEnvBoolean(v), true);
    for (const v of ["0", "false", "no", "off", ""]) assert.equal(parseEnvBoolean(v), false);
    assert.throws(() => parseEnvBoolean("maybe"), ConfigValueError);
    assert.equal(parseListenPort("0"), 0);
    assert.equal(parseListenPort("9100"), 9100);
    assert.throws(() => parseListenPort("65536"), ConfigValueError);
    assert.throws(() => parseListenPort("-1"), ConfigValueError);
  });
});
