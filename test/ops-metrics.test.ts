/**
 * /metrics and /healthz of a real agent process, with a real ROUTER and real jobs on the engine:
 * counts by outcome after jobs of each outcome, phase histograms, slots, pings; health turning
 * 503 while the backend is silent (the watchdog reconnects meanwhile) and 200 when it is back.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { newJob } from "./helpers/backend.js";
import { httpGet as get, sample, startOpsSession, type OpsSession } from "./helpers/ops.js";
import { eventually } from "./helpers/docker.js";

describe("metrics after jobs of each outcome", () => {
  let s: OpsSession;
  let port: number;
  before(async () => {
    s = await startOpsSession(["--metrics-port", "0"]);
    port = s.port!;
    await s.agent.waitLog((l) => l.msg === "metrics server listening" && l["host"] === "127.0.0.1", 5000);
  });
  // Checked once, after the agent stopped: warm containers may stand between jobs.
  after(() => s?.end());

  test("a fresh agent exports zero counts, its slots and an event-loop delay", async () => {
    const { status, body, type } = await get(port, "/metrics");
    assert.equal(status, 200);
    assert.match(type ?? "", /^text\/plain; version=0\.0\.4/);
    for (const result of ["success", "failed", "crash", "timeout", "overflow", "killed"]) {
      assert.equal(sample(body, `inginious_agent_jobs_total{result="${result}"}`), 0, result);
    }
    assert.equal(sample(body, "inginious_agent_job_slots"), 4);
    assert.equal(sample(body, "inginious_agent_free_slots"), 4);
    assert.equal(sample(body, "inginious_agent_jobs_running"), 0);
    assert.equal(sample(body, "inginious_agent_docker_up"), 1);
    assert.equal(sample(body, "inginious_agent_docker_event_stream_up"), 1);
    assert.equal(sample(body, "inginious_agent_backend_reconnects_total"), 0);
    assert.ok(sample(body, "nodejs_eventloop_lag_p99_seconds")! >= 0);
    assert.match(body, /^# HELP inginious_agent_docker_errors_total /m);
    assert.match(body, /^# HELP inginious_agent_ping_pong_delay_seconds Time from reading a Ping/m);
  });

  test("success, failed, two crashes, timeout and killed are counted by result", async () => {
    const jobs: Array<[string, Parameters<typeof newJob>[1]]> = [
      ["m-success", { task_id: "success", inputdata: { q1: "print(1)", "@state": "" } }],
      ["m-failed", { task_id: "failed" }],
      ["m-crash-exit", { task_id: "exit3" }],
      ["m-crash-notask", { task_id: "no-such-task" }],
      ["m-timeout", { task_id: "sleep", limits: { time: 20, hard_time: 3 } }],
    ];
    for (const [id, over] of jobs) await s.backend.send(newJob(id, over));
    const results: Record<string, string> = {};
    for (const [id] of jobs) results[id] = ((await s.backend.done(id))["result"] as string[])[0]!;

    // Results go out before the containers are removed: a job holds its slot until then.
    await eventually(async () => assert.equal(sample((await get(port, "/metrics")).body, "inginious_agent_jobs_running"), 0));
    // Alone, so that it is surely running (not queued) when killed; jobs_running sees it.
    await s.backend.send(newJob("m-killed", { task_id: "sleep" }));
    const deadline = Date.now() + 20_000;
    let running = 0;
    while (Date.now() < deadline) {
      running = sample((await get(port, "/metrics")).body, "inginious_agent_jobs_running") ?? 0;
      if (running > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(running, 1, "jobs_running counts the running job");
    assert.equal(sample((await get(port, "/metrics")).body, "inginious_agent_free_slots"), 3);
    await new Promise((r) => setTimeout(r, 1000));
    await s.backend.send({ type: "BackendKillJob", job_id: "m-killed", state: "" });
    results["m-killed"] = ((await s.backend.done("m-killed"))["result"] as string[])[0]!;
    assert.deepEqual(results, {
      "m-success": "success", "m-failed": "failed", "m-crash-exit": "crash", "m-crash-notask": "crash",
      "m-timeout": "timeout", "m-killed": "killed",
    });

    const body = (await get(port, "/metrics")).body;
    assert.equal(sample(body, 'inginious_agent_jobs_total{result="success"}'), 1);
    assert.equal(sample(body, 'inginious_agent_jobs_total{result="failed"}'), 1);
    assert.equal(sample(body, 'inginious_agent_jobs_total{result="crash"}'), 2);
    assert.equal(sample(body, 'inginious_agent_jobs_total{result="timeout"}'), 1);
    assert.equal(sample(body, 'inginious_agent_jobs_total{result="killed"}'), 1);
    assert.equal(sample(body, 'inginious_agent_jobs_total{result="overflow"}'), 0);
    // Five jobs reached a worker (the one for a missing task never did).
    assert.equal(sample(body, "inginious_agent_job_queue_wait_seconds_count"), 5);
    for (const phase of ["prepare", "create", "start", "run", "cleanup"]) {
      assert.ok((sample(body, `inginious_agent_job_phase_seconds_count{phase="${phase}"}`) ?? 0) >= 4, `phase ${phase} observed`);
    }
    const timeoutRun = sample(body, 'inginious_agent_job_duration_seconds_sum{result="timeout"}')!;
    assert.ok(timeoutRun >= 3 && timeoutRun < 15, `the timeout job took ${timeoutRun} s`);
    assert.equal(sample(body, 'inginious_agent_job_duration_seconds_count{result="crash"}'), 2);
    assert.ok((sample(body, "inginious_agent_ping_pong_delay_seconds_count") ?? 0) > 0, "pings were answered");
    assert.ok((sample(body, "inginious_agent_ping_pong_delay_seconds_sum") ?? 1) < 0.5);
  });

  test("slots are free again once the jobs are gone", async () => {
    await eventually(async () => {
      const body = (await get(port, "/metrics")).body;
      assert.equal(sample(body, "inginious_agent_jobs_running"), 0);
      assert.equal(sample(body, "inginious_agent_jobs_queued"), 0);
      assert.equal(sample(body, "inginious_agent_free_slots"), 4);
    });
  });

  test("/healthz says ok with each check; other paths are 404", async () => {
    const { status, body, type } = await get(port, "/healthz");
    assert.equal(status, 200, body);
    assert.equal(type, "application/json");
    const report = JSON.parse(body) as { status: string; failing: string[]; checks: Record<string, { ok: boolean }> };
    assert.equal(report.status, "ok");
    assert.deepEqual(report.failing, []);
    assert.deepEqual(Object.keys(report.checks).sort(), ["backend", "docker", "docker_events"]);
    assert.equal((await get(port, "/nope")).status, 404);
  });
});

describe("health follows the backend", () => {
  test("503 naming the backend while it is silent (across the watchdog's reconnect), 200 when it is back", async () => {
    const s = await startOpsSession(["--metrics-port", "0"]);
    try {
      const port = s.port!;
      assert.equal((await get(port, "/healthz")).status, 200);
      await s.backend.waitType("Pong", 10_000);
      const firstHello = s.backend.received.filter((r) => r.message["@type"] === "AgentHello").length;
      s.stopPings();
      const silentAt = Date.now();

      // Silent for more than 10 s: failing, and it stays failing after the agent's new hello.
      let report: { status: string; failing: string[]; reasons: string[] } | null = null;
      let status = 0;
      while (Date.now() - silentAt < 20_000) {
        const r = await get(port, "/healthz");
        status = r.status;
        report = JSON.parse(r.body) as typeof report;
        if (status === 503) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(status, 503, "unhealthy after 10 s of silence");
      const after = Date.now() - silentAt;
      assert.ok(after >= 9_500, `turned 503 after ${after} ms`);
      assert.deepEqual(report!.failing, ["backend"]);
      assert.match(report!.reasons[0]!, /^backend: no message from the backend for 1\d\.\d s/);

      await s.backend.waitFor(() => s.backend.received.filter((r) => r.message["@type"] === "AgentHello").length > firstHello, 15_000);
      const reconnected = await get(port, "/healthz");
      assert.equal(reconnected.status, 503, "a new hello is not a message from the backend");
      const metrics = (await get(port, "/metrics")).body;
      assert.equal(sample(metrics, "inginious_agent_backend_reconnects_total"), 1);
      assert.ok(sample(metrics, "inginious_agent_backend_last_message_age_seconds")! > 10);

      // The backend speaks again (to the new identity).
      await s.backend.send({ type: "Ping" });
      let back = await get(port, "/healthz");
      for (let i = 0; i < 30 && back.status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        back = await get(port, "/healthz");
      }
      assert.equal(back.status, 200, back.body);
    } finally {
      await s.end();
    }
  });
});
