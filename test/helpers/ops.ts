/**
 * For the operator-feature tests: one agent process + one fake backend + one tmpdir, whose
 * cleanliness is judged on this agent's own containers (by its label), so that tests of other
 * suites running on the same engine at the same time do not make it fail.
 */
import assert from "node:assert/strict";
import Docker from "dockerode";
import { AgentProcess, TASKS, runCli, tempDir } from "./agent-process.js";
import { FakeBackend } from "./backend.js";
import { dirListing, eventually, requireDocker } from "./docker.js";

const docker = new Docker();
const LABEL_AGENT = "org.inginious-agent-docker.agent";

export interface OpsSession {
  backend: FakeBackend;
  agent: AgentProcess;
  tmpdir: string;
  /** The agent's id, as on its containers' label. */
  agentId: string;
  /** Port of /metrics and /healthz, when started with --metrics-port. */
  port: number | null;
  stopPings: () => void;
  startPings: () => void;
  assertClean(): Promise<void>;
  end(): Promise<void>;
}

export async function agentContainers(agentId: string): Promise<string[]> {
  return (await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId}`] } })).map((c) => c.Id);
}

export async function startOpsSession(extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<OpsSession> {
  await requireDocker();
  const tmp = tempDir("ops");
  const backend = await new FakeBackend().start();
  const agent = new AgentProcess([
    backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "4", "--debug-host", "127.0.0.1", ...extraArgs,
  ], env);
  let stop = (): void => {};
  const cleanup = async (): Promise<void> => {
    stop();
    await agent.stop();
    backend.close();
  };
  try {
    await backend.waitType("AgentHello", 30_000);
    const ready = await agent.waitLog((l) => l.msg === "agent ready");
    const listening = extraArgs.includes("--metrics-port") || env["INGINIOUS_AGENT_METRICS_PORT"] !== undefined
      ? await agent.waitLog((l) => l.msg === "metrics server listening")
      : null;
    const agentId = ready["agent"] as string;
    stop = backend.pingEvery(1000);
    const session: OpsSession = {
      backend, agent, tmpdir: tmp.path, agentId,
      port: listening === null ? null : (listening["port"] as number),
      stopPings: () => stop(),
      startPings: () => {
        stop();
        stop = backend.pingEvery(1000);
      },
      async assertClean() {
        await eventually(async () => {
          assert.deepEqual(await agentContainers(agentId), [], "containers left behind");
          assert.deepEqual(await dirListing(tmp.path), [], "job directories left behind");
        });
      },
      async end() {
        try {
          await cleanup();
          await session.assertClean();
        } finally {
          for (const id of await agentContainers(agentId)) await docker.getContainer(id).remove({ force: true }).catch(() => {});
          tmp.remove();
        }
      },
    };
    return session;
  } catch (err) {
    await cleanup();
    tmp.remove();
    throw err;
  }
}

/** GET on the agent's metrics port. */
export async function httpGet(port: number, p: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
}

/** The value of one sample of a Prometheus text, or undefined. */
export function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** Runs the CLI to completion with extra environment variables; returns its status and output. */
export function runCliWithEnv(
  args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(args, timeoutMs, env);
}

/** The JSON log lines of an output. */
export function logLines(stdout: string): Array<Record<string, unknown>> {
  return stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
}
