/** Runs the built agent as a child process, the way operators run it, and reads its JSON logs. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { slow } from "./slowness.js";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const CLI = path.join(REPO, "dist/src/cli.js");
export const TASKS = path.join(REPO, "test/fixtures/tasks");

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export class AgentProcess {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private child: ChildProcess;

  /** `prefix` runs the agent through another command, e.g. setpriv to drop root. */
  constructor(args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = []) {
    const [command, ...rest] = [...prefix, process.execPath, CLI, ...args] as [string, ...string[]];
    this.child = spawn(command, rest, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let pending = "";
    this.child.stdout!.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 0, msg: line });
        }
      }
    });
    this.child.stderr!.on("data", (chunk: Buffer) => this.stderr.push(chunk.toString()));
    // "close" rather than "exit": it fires once stdout is drained, so every log line is in `logs`.
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** SIGTERM, then SIGKILL if it does not exit within `ms`. */
  async stop(ms = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), slow(ms));
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  async waitLog(pred: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    return (await this.waitLogs(pred, 1, timeoutMs))[0]!;
  }

  /**
   * Waits until at least `count` log lines match. Logs come through a pipe, so a line written
   * before a wire message may still be in flight when that message arrives.
   */
  async waitLogs(pred: (l: LogLine) => boolean, count: number, timeoutMs = 20_000): Promise<LogLine[]> {
    const deadline = Date.now() + slow(timeoutMs);
    for (;;) {
      const hits = this.logs.filter(pred);
      if (hits.length >= count) return hits;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${count} matching log line(s), saw ${hits.length}; stderr: ${this.stderr.join("")}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** A temporary directory owned by one test; remove() deletes it. */
export function tempDir(prefix: string): { path: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `iad-${prefix}-`));
  return { path: dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs the CLI to completion (with extra environment variables) and returns its exit status and output. */
export function runCli(
  args: string[], timeoutMs = 120_000, env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}
