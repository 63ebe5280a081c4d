/** A dockerd of a test's own (own data root, exec root and socket), so that restarting it hits no other test. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import Docker from "dockerode";
import { tempDir } from "./agent-process.js";

export class PrivateDockerd {
  readonly root = tempDir("dockerd");
  readonly socket = path.join(this.root.path, "d.sock");
  readonly docker = new Docker({ socketPath: this.socket });
  private proc: ChildProcess | null = null;

  get host(): string {
    return `unix://${this.socket}`;
  }

  async start(): Promise<void> {
    const r = this.root.path;
    writeFileSync(path.join(r, "daemon.json"), "{}"); // not the host's /etc/docker/daemon.json
    // In a network namespace of its own: with --bridge none, dockerd deletes any docker0 it
    // sees, and the host's belongs to the main engine.
    this.proc = spawn("unshare", ["--net", "dockerd",
      "--data-root", path.join(r, "data"), "--exec-root", path.join(r, "exec"), "--pidfile", path.join(r, "d.pid"),
      "--host", this.host, "--bridge", "none", "--iptables=false", "--ip-masq=false", "--config-file", path.join(r, "daemon.json"),
    ], { stdio: "ignore" });
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await this.docker.ping();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error("the private dockerd did not answer within 60 s");
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  }

  /** Copies an image from the main engine into this one. */
  loadImage(image: string): void {
    const r = spawnSync("sh", ["-c", `docker save ${image} | docker -H ${this.host} load -q`], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`could not load ${image} into the private dockerd: ${r.stderr}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((res) => p.on("exit", res));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(t);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async remove(): Promise<void> {
    await this.stop();
    // dockerd unmounts its layers on a clean stop; whatever is still mounted below the root goes first
    spawnSync("sh", ["-c", `grep -o " ${this.root.path}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
    rmSync(this.root.path, { recursive: true, force: true });
  }
}
