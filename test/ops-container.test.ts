/**
 * The agent itself in a container, with the Docker socket mounted (as deploy/ describes): it
 * refuses to start when --tmpdir is not the same directory on the engine's host, and grades
 * jobs when it is. The container is the sample grading image running this checkout's build
 * with this machine's node binary (no registry needed), on the host's network to reach the
 * test's ROUTER.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { docker, eventually, requireDocker, SAMPLE_IMAGE } from "./helpers/docker.js";
import { agentContainers } from "./helpers/ops.js";

const TEST_LABEL = "org.inginious-agent-docker.test=ops-container";

interface Run {
  name: string;
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  waitLog(pred: (l: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
}

/** `docker run` of the agent in the sample image; `mounts` are -v values. */
function runAgentInContainer(mounts: string[], args: string[]): Run {
  const name = `iad-ops-agent-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const child = spawn("docker", [
    "run", "--rm", "--name", name, "--label", TEST_LABEL, "--network", "host",
    "-v", `${process.execPath}:/usr/local/bin/node:ro`,
    "-v", `${REPO}:${REPO}:ro`,
    "-v", "/var/run/docker.sock:/var/run/docker.sock",
    ...mounts.flatMap((m) => ["-v", m]),
    "-e", "INGINIOUS_AGENT_LOG_FORMAT=json",
    "--entrypoint", "/usr/local/bin/node",
    SAMPLE_IMAGE, path.join(REPO, "dist/src/cli.js"), ...args,
  ], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: Array<Record<string, unknown>> = [];
  let pending = "";
  child.stdout.on("data", (c: Buffer) => {
    pending += c.toString();
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    name, lines, exited,
    async waitLog(pred, ms = 30_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = lines.find(pred);
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`timed out; logs: ${JSON.stringify(lines).slice(0, 3000)} stderr: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

async function removeTestContainers(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [TEST_LABEL] } })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  }
}

describe("the agent in a container", () => {
  test("--tmpdir mounted at another path than on the host: exit 1 saying how to mount it", async () => {
    await requireDocker();
    const host = tempDir("ops-ctr-host");
    // A directory that exists on the host too, but is not the one mounted: the probe file is not there.
    const other = tempDir("ops-ctr-other");
    // A path that does not exist on the host at all.
    const nowhere = path.join(os.tmpdir(), `iad-ops-ctr-nowhere-${process.pid}`);
    try {
      const a = runAgentInContainer([`${host.path}:${other.path}`], ["tcp://127.0.0.1:9", "--tmpdir", other.path, "--tasks", TASKS]);
      assert.equal(await a.exited, 1);
      const fatal = await a.waitLog((l) => l["check"] === "tmpdir-host-path");
      assert.equal(fatal["level"], 60);
      assert.match(fatal["msg"] as string, new RegExp(`--tmpdir ${other.path} is not the same directory for the agent and for the Docker engine.*docker run -v ${other.path}:${other.path}`));

      const b = runAgentInContainer([`${host.path}:${nowhere}`], ["tcp://127.0.0.1:9", "--tmpdir", nowhere, "--tasks", TASKS]);
      assert.equal(await b.exited, 1);
      const missing = await b.waitLog((l) => l["check"] === "tmpdir-host-path");
      assert.match(missing["msg"] as string, new RegExp(`--tmpdir ${nowhere} does not exist on the Docker engine's host`));
      assert.throws(() => rmSync(nowhere), /ENOENT/, "the check created nothing on the host");
      const probes = await docker.listContainers({ all: true, filters: { label: ["org.inginious-agent-docker.role=probe"] } });
      assert.deepEqual(probes.filter((c) => c.Mounts.some((m) => m.Source === host.path || m.Source === other.path)), [], "no probe container left");
    } finally {
      await removeTestContainers();
      host.remove();
      other.remove();
    }
  });

  test("--tmpdir mounted at the same path: the check passes and jobs are graded", async () => {
    await requireDocker();
    const data = mkdtempSync(path.join(os.tmpdir(), "iad-ops-ctr-same-"));
    const backend = await new FakeBackend().start();
    const a = runAgentInContainer([`${data}:${data}`, `${TASKS}:${TASKS}:ro`], [backend.address, "--tmpdir", data, "--tasks", TASKS, "-v"]);
    let agentId = "";
    try {
      await backend.waitType("AgentHello", 60_000);
      await a.waitLog((l) => l.msg === "--tmpdir is the same directory for the engine");
      agentId = (await a.waitLog((l) => l.msg === "agent ready"))["agent"] as string;
      const stopPings = backend.pingEvery(1000);
      try {
        await backend.send(newJob("in-ctr-1", { task_id: "success", inputdata: { q1: "print(1)", "@state": "" } }));
        const done = await backend.done("in-ctr-1");
        assert.deepEqual((done["result"] as string[])[0], "success", JSON.stringify(done["result"]));
      } finally {
        stopPings();
      }
      await new Promise<void>((resolve) => spawn("docker", ["stop", "-t", "15", a.name], { stdio: "ignore" }).on("exit", () => resolve()));
      assert.equal(await a.exited, 0, "SIGTERM from docker stop: exit 0");
      await eventually(async () => {
        const left = await docker.listContainers({ all: true, filters: { label: [`org.inginious-agent-docker.agent=${agentId}`] } });
        assert.deepEqual(left.map((c) => `${c.Labels["org.inginious-agent-docker.role"]} ${c.State}`), [], "the agent's containers are gone");
      });
      assert.deepEqual(readdirSync(data), [], "job directories are gone");
    } finally {
      backend.close();
      await removeTestContainers();
      if (agentId !== "") for (const id of await agentContainers(agentId)) await docker.getContainer(id).remove({ force: true }).catch(() => {});
      rmSync(data, { recursive: true, force: true });
    }
  });
});
