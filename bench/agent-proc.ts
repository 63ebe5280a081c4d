/**
 * The real agent as a child process, run the way operators run it, with its event-loop
 * stats file (INGINIOUS_AGENT_STATS) and its JSON log in the bench's temp directory.
 * BENCH_AGENT_NODE_ARGS adds node flags (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, promises as fs } from "node:fs";
import path from "node:path";

import type { LoopSnapshot } from "../src/loop-monitor.js";
export type { LoopSnapshot };

export interface LogLine {
  time?: string;
  msg?: string;
  [k: string]: unknown;
}

export class AgentProc {
  readonly child: ChildProcess;
  readonly statsFile: string;
  readonly logFile: string;
  readonly exited: Promise<number | null>;
  exitCode: number | null = null;
  private hasExited = false;

  constructor(cli: string, args: string[], dir: string, env: Record<string, string> = {}) {
    this.statsFile = path.join(dir, "agent-stats.json");
    this.logFile = path.join(dir, "agent.log");
    const fd = openSync(this.logFile, "a");
    const nodeArgs = (process.env["BENCH_AGENT_NODE_ARGS"] ?? "").split(/\s+/).filter((a) => a !== "");
    this.child = spawn(process.execPath, [...nodeArgs, cli, ...args], {
      stdio: ["ignore", fd, fd],
      env: { ...process.env, ...env, INGINIOUS_AGENT_STATS: this.statsFile },
    });
    closeSync(fd);
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code, signal) => {
        this.hasExited = true;
        this.exitCode = code ?? (signal ? -1 : null);
        resolve(this.exitCode);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return !this.hasExited;
  }

  /**
   * Ends the agent's event-loop delay window and starts the next one (SIGUSR2): the agent
   * writes the ended window's figures to its stats file. Returns them, or null if none came.
   */
  async loopWindow(): Promise<LoopSnapshot | null> {
    if (!this.alive) return null;
    const asked = Date.now();
    this.child.kill("SIGUSR2");
    for (let i = 0; i < 100; i++) {
      try {
        const snap = JSON.parse(await fs.readFile(this.statsFile, "utf8")) as LoopSnapshot;
        if (snap.at >= asked) return snap;
      } catch {
        // not written yet
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return null;
  }

  async readLog(): Promise<LogLine[]> {
    let text: string;
    try {
      text = await fs.readFile(this.logFile, "utf8");
    } catch {
      return [];
    }
    const out: LogLine[] = [];
    for (const line of text.split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        out.push(JSON.parse(line) as LogLine);
      } catch {
        /* a partial last line */
      }
    }
    return out;
  }

  async tail(lines = 20): Promise<string> {
    try {
      return (await fs.readFile(this.logFile, "utf8")).split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  /** SIGTERM, then SIGKILL after `ms`. */
  async stop(ms = 20_000): Promise<number | null> {
    if (!this.alive) return this.exitCode;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), ms);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}
