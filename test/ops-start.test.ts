/**
 * The agent process at start: each self-check's message when its condition is true (fatal ones
 * exit 1), configuration from INGINIOUS_AGENT_* variables (bad values exit 2 naming the variable),
 * and logs on a terminal.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { AgentProcess, CLI, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend } from "./helpers/backend.js";
import { dirListing, requireDocker } from "./helpers/docker.js";
import { agentContainers, httpGet, logLines, runCliWithEnv, startOpsSession } from "./helpers/ops.js";

const NO_BACKEND = "tcp://127.0.0.1:9";
const FATAL = 60;
const WARN = 40;

describe("self-checks", () => {
  test("--tmpdir that is a file: exit 1, saying it is not writable and what to do", async () => {
    const tmp = tempDir("ops-tmpfile");
    try {
      const file = path.join(tmp.path, "not-a-dir");
      writeFileSync(file, "");
      for (const tmpdir of [file, path.join(file, "below")]) {
        const { code, stdout } = await runCliWithEnv([NO_BACKEND, "--tmpdir", tmpdir, "--tasks", TASKS], {});
        assert.equal(code, 1, stdout);
        const lines = logLines(stdout);
        const check = lines.find((l) => l["check"] === "tmpdir");
        assert.ok(check, stdout);
        assert.equal(check["level"], FATAL);
        assert.match(check["msg"] as string, /--tmpdir .*not-a-dir.* is not writable \(\w+: it, or one of its parents, is a file, not a directory\).*mkdir -p/);
        assert.ok(lines.some((l) => l.msg === "not starting: fix the problems above"));
        assert.ok(!lines.some((l) => l.msg === "agent ready"), "the agent did not start");
      }
    } finally {
      tmp.remove();
    }
  });

  test("Docker unreachable (DOCKER_HOST to a missing socket): exit 1 naming the address and the fix", async () => {
    const tmp = tempDir("ops-nodocker");
    try {
      const { code, stdout } = await runCliWithEnv([NO_BACKEND, "--tmpdir", tmp.path, "--tasks", TASKS], {
        DOCKER_HOST: "unix:///nonexistent.sock",
      });
      assert.equal(code, 1, stdout);
      const check = logLines(stdout).find((l) => l["check"] === "docker");
      assert.ok(check, stdout);
      assert.equal(check["level"], FATAL);
      assert.match(check["msg"] as string, /^Docker is not reachable at unix:\/\/\/nonexistent\.sock \(from DOCKER_HOST\): .*ENOENT.*Fix: no socket there: start the engine/);
      assert.deepEqual(await dirListing(tmp.path), [], "nothing left in --tmpdir");
    } finally {
      tmp.remove();
    }
  });

  test("--tasks missing: a warning, and the agent runs", async () => {
    await requireDocker();
    const tmp = tempDir("ops-notasks");
    const backend = await new FakeBackend().start();
    const missing = path.join(tmp.path, "tasks-not-synced-yet");
    const agent = new AgentProcess([backend.address, "--tmpdir", path.join(tmp.path, "data"), "--tasks", missing]);
    try {
      await backend.waitType("AgentHello");
      const warning = await agent.waitLog((l) => l["check"] === "tasks");
      assert.equal(warning.level, WARN);
      assert.equal(warning.msg, `--tasks ${missing} does not exist (yet): jobs will end as crash ("Task unavailable on agent") until the courses are there; sync the backend's tasks folder to it, or fix --tasks (INGINIOUS_AGENT_TASKS)`);
    } finally {
      assert.equal(await agent.stop(), 0);
      backend.close();
      tmp.remove();
    }
  });

  test("a metrics port already in use: exit 1 saying so, nothing left behind", async () => {
    await requireDocker();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    const tmp = tempDir("ops-portbusy");
    try {
      const { code, stdout } = await runCliWithEnv([NO_BACKEND, "--tmpdir", tmp.path, "--tasks", TASKS, "--metrics-port", String(port)], {});
      assert.equal(code, 1, stdout);
      const lines = logLines(stdout);
      const fatal = lines.find((l) => l["level"] === FATAL);
      assert.equal(fatal?.["msg"], `cannot serve metrics on 127.0.0.1:${port} (EADDRINUSE): another process uses this port: choose another --metrics-port`);
      const agent = lines.find((l) => l.msg === "agent ready")?.["agent"] as string;
      assert.deepEqual(await agentContainers(agent), []);
      assert.deepEqual(await dirListing(tmp.path), []);
    } finally {
      blocker.close();
      tmp.remove();
    }
  });

  test("on a terminal, logs are short readable lines, not JSON", () => {
    const tmp = tempDir("ops-tty");
    try {
      const file = path.join(tmp.path, "file");
      writeFileSync(file, "");
      // script(1) runs the agent on a pseudo-terminal.
      let out = "";
      try {
        out = execFileSync("script", ["-qec", `${process.execPath} ${CLI} ${NO_BACKEND} --tmpdir ${file} --tasks ${TASKS}`, "/dev/null"], {
          encoding: "utf8", env: { ...process.env, NO_COLOR: "1" },
        });
      } catch (err) {
        out = (err as { stdout?: string }).stdout ?? "";
      }
      assert.match(out, /^\d\d:\d\d:\d\d\.\d{3} FATAL --tmpdir .* is not writable .* {2}check=tmpdir\r?$/m);
      assert.ok(!out.includes('"level"'), out);
    } finally {
      tmp.remove();
    }
  });
});

describe("configuration from the environment", () => {
  test("INGINIOUS_AGENT_CONCURRENCY, _BACKEND, _TMPDIR, _TASKS, _METRICS_PORT configure the agent", async () => {
    await requireDocker();
    const tmp = tempDir("ops-env");
    const backend = await new FakeBackend().start();
    const agent = new AgentProcess([], {
      INGINIOUS_AGENT_BACKEND: backend.address,
      INGINIOUS_AGENT_CONCURRENCY: "3",
      INGINIOUS_AGENT_TMPDIR: tmp.path,
      INGINIOUS_AGENT_TASKS: TASKS,
      INGINIOUS_AGENT_METRICS_PORT: "0",
      INGINIOUS_AGENT_FRIENDLY_NAME: "from-env",
      INGINIOUS_AGENT_DEBUG_HOST: "127.0.0.1",
      INGINIOUS_AGENT_SSH: "1",
    });
    try {
      const hello = (await backend.waitType("AgentHello")).message;
      assert.equal(hello["available_job_slots"], 3);
      assert.equal(hello["friendly_name"], "from-env");
      const listening = await agent.waitLog((l) => l.msg === "metrics server listening");
      const metrics = (await httpGet(listening["port"] as number, "/metrics")).body;
      assert.match(metrics, /^inginious_agent_job_slots 3$/m);
      const ready = await agent.waitLog((l) => l.msg === "agent ready");
      assert.equal(ready["concurrency"], 3);
      assert.ok(agent.logs.some((l) => l.msg === "using runtime" && l["envtype"] === "docker-ssh"), "INGINIOUS_AGENT_SSH=1 is --ssh");
    } finally {
      assert.equal(await agent.stop(), 0);
      backend.close();
      tmp.remove();
    }
  });

  test("an option given on the command line wins over its variable", async () => {
    const s = await startOpsSession(["--concurrency", "2"], { INGINIOUS_AGENT_CONCURRENCY: "3" });
    try {
      assert.equal((await s.backend.waitType("AgentHello")).message["available_job_slots"], 2);
    } finally {
      await s.end();
    }
  });

  const bad: Array<[string, NodeJS.ProcessEnv, string[], RegExp]> = [
    ["a zero concurrency", { INGINIOUS_AGENT_CONCURRENCY: "0" }, [NO_BACKEND], /option '--concurrency <n>' value '0' from env 'INGINIOUS_AGENT_CONCURRENCY' is invalid\. expected a positive integer/],
    ["junk debug ports", { INGINIOUS_AGENT_DEBUG_PORTS: "10-x" }, [NO_BACKEND], /from env 'INGINIOUS_AGENT_DEBUG_PORTS' is invalid\. expected a port range/],
    ["a metrics port out of range", { INGINIOUS_AGENT_METRICS_PORT: "99999" }, [NO_BACKEND], /from env 'INGINIOUS_AGENT_METRICS_PORT' is invalid\. expected a TCP port between 0 and 65535/],
    ["a flag variable that is not a boolean", { INGINIOUS_AGENT_SSH: "maybe" }, [NO_BACKEND], /environment variable INGINIOUS_AGENT_SSH \(--ssh\): expected 1, true, yes, on, or 0, false, no, off, got "maybe"/],
    ["a runtime without its envtype", { INGINIOUS_AGENT_RUNTIME: "runc docker, crun" }, [NO_BACKEND], /environment variable INGINIOUS_AGENT_RUNTIME \(--runtime\): expected RUNTIME ENVTYPE/],
    ["an unknown filesystem provider", { INGINIOUS_AGENT_FS: "s3" }, [NO_BACKEND], /INGINIOUS_AGENT_FS.*Allowed choices are local/],
    ["a backend address without a scheme", { INGINIOUS_AGENT_BACKEND: "127.0.0.1:2001" }, [], /environment variable INGINIOUS_AGENT_BACKEND: expected protocol:\/\/host:port/],
    ["no backend anywhere", { INGINIOUS_AGENT_BACKEND: "" }, [], /missing required argument 'backend' \(give it, or set INGINIOUS_AGENT_BACKEND\)/],
  ];
  for (const [name, env, args, message] of bad) {
    test(`${name} from the environment exits 2 with one line naming the variable`, async () => {
      const { code, stderr, stdout } = await runCliWithEnv(args, env);
      assert.equal(code, 2, `stderr: ${stderr}\nstdout: ${stdout}`);
      assert.match(stderr, message);
      assert.equal(stderr.trim().split("\n").length, 1, `one line expected, got:\n${stderr}`);
    });
  }

  test("false-like values turn a flag off; --help names every variable", async () => {
    const { code, stdout } = await runCliWithEnv(["--help"], {});
    assert.equal(code, 0);
    for (const name of [
      "BACKEND", "FRIENDLY_NAME", "DEBUG_HOST", "DEBUG_PORTS", "TMPDIR", "TASKS", "FS", "FS_LOCATION", "CONCURRENCY",
      "VERBOSE", "DEBUGMODE", "DISABLE_AUTORESTART", "DISABLE_DISK_LIMIT", "SSH", "RUNTIME", "POOL_THREADS", "PIDS_LIMIT", "METRICS_PORT", "METRICS_HOST",
    ]) {
      assert.ok(stdout.replace(/\s+/g, " ").includes(`INGINIOUS_AGENT_${name})`) || stdout.replace(/\s+/g, " ").includes(`INGINIOUS_AGENT_${name},`),
        `--help names INGINIOUS_AGENT_${name}`);
    }
    const s = await startOpsSession([], { INGINIOUS_AGENT_SSH: "no" });
    try {
      await s.agent.waitLog((l) => l.msg === "using runtime" && l["envtype"] === "docker", 5000);
      assert.ok(!s.agent.logs.some((l) => l.msg === "using runtime" && l["envtype"] === "docker-ssh"), "INGINIOUS_AGENT_SSH=no is not --ssh");
    } finally {
      await s.end();
    }
  });
});
