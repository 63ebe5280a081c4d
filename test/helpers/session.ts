/** One agent process + one fake backend + one tmpdir, and the proof that a test left nothing behind. */
import assert from "node:assert/strict";
import { AgentProcess, TASKS, tempDir } from "./agent-process.js";
import { FakeBackend } from "./backend.js";
import { containerIds, dirListing, eventually, requireDocker } from "./docker.js";

export interface Session {
  backend: FakeBackend;
  agent: AgentProcess;
  tmpdir: string;
  stopPings: () => void;
  /** Checks that the containers are those of before the session and the tmpdir holds no job directory. */
  assertClean(): Promise<void>;
  /** Stops the agent and backend, checks that no container or directory is left, removes the tmpdir. */
  end(): Promise<void>;
}

export async function startSession(extraArgs: string[] = [], opts: { ping?: boolean; images?: string[] } = {}): Promise<Session> {
  await requireDocker(opts.images);
  const before = await containerIds();
  const tmp = tempDir("agent");
  const backend = await new FakeBackend().start();
  // The backend comes first: --runtime takes every word after it, as in INGInious.
  const agent = new AgentProcess([
    backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "4", "--debug-host", "127.0.0.1", ...extraArgs,
  ]);
  await backend.waitType("AgentHello", 30_000);
  const stopPings = opts.ping === false ? () => {} : backend.pingEvery(1000);
  return {
    backend,
    agent,
    tmpdir: tmp.path,
    stopPings,
    async assertClean() {
      await eventually(async () => {
        assert.deepEqual(await containerIds(), before, "containers left behind");
        assert.deepEqual(await dirListing(tmp.path), [], "job directories left behind");
      });
    },
    async end() {
      stopPings();
      await agent.stop();
      backend.close();
      try {
        await eventually(async () => assert.deepEqual(await containerIds(), before, "containers left behind"));
        assert.deepEqual(await dirListing(tmp.path), [], "job directories left behind");
      } finally {
        tmp.remove();
      }
    },
  };
}
