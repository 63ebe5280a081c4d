/**
 * Checks made once at start, before the agent connects, each with a message an operator can act
 * on. Fatal ones (Docker unreachable, --tmpdir not writable, --tmpdir not the same directory
 * for the engine) make the agent exit 1; the others are warnings. The deciding parts are pure
 * functions, tested on their own; `runStartChecks` gathers the facts and logs.
 */
import { randomBytes } from "node:crypto";
import { existsSync, promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type Docker from "dockerode";
import type { AgentConfig } from "../config.js";
import { agentId, LABEL_AGENT, LABEL_ROLE } from "../docker/labels.js";
import { LABEL_NAME } from "../environments/images.js";
import { agentCgroupRoot, oomGroupAdvice, oomGroupProblem } from "../limits/oom-group.js";
import type { Logger } from "../log.js";

export interface CheckMessage {
  level: "fatal" | "warn";
  /** Short name of the check, logged as `check`. */
  check: string;
  message: string;
}

// ---- Docker reachable ----------------------------------------------------------------------

/** Where dockerode connects: DOCKER_HOST, or the default socket. */
export function dockerAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env["DOCKER_HOST"] || "unix:///var/run/docker.sock";
}

/** The message for an engine that did not answer, with what to do about it. */
export function dockerUnreachableMessage(err: unknown, address: string): string {
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : undefined;
  const status = typeof e?.statusCode === "number" ? e.statusCode : undefined;
  const what = String(e?.message ?? err);
  const fromEnv = process.env["DOCKER_HOST"] ? " (from DOCKER_HOST)" : " (the default; set DOCKER_HOST for another engine)";
  let fix: string;
  if (code === "ENOENT") fix = "no socket there: start the engine (systemctl start docker, or dockerd), or point DOCKER_HOST at the socket it listens on";
  else if (code === "EACCES" || code === "EPERM") fix = "permission denied: run the agent as root, or add its user to the docker group (usermod -aG docker USER) and restart it";
  else if (code === "ECONNREFUSED") fix = "nothing listens there: start the engine (systemctl start docker), or fix DOCKER_HOST";
  else if (code === "ENOTFOUND" || code === "EAI_AGAIN") fix = "the host named in DOCKER_HOST does not resolve: fix DOCKER_HOST";
  else if (code === "ETIMEDOUT" || /timeout|no answer/i.test(what)) fix = "the engine does not answer in time: check it with `docker info` and check DOCKER_HOST";
  else if (status !== undefined) fix = `something answered with HTTP ${status} but not as a Docker engine: check DOCKER_HOST`;
  else fix = "start the engine (systemctl start docker), or set DOCKER_HOST, and check that this user may use the Docker socket";
  return `Docker is not reachable at ${address}${fromEnv}: ${what}. Fix: ${fix}`;
}

// ---- --tmpdir writable ---------------------------------------------------------------------

/** Null when the agent can create files in `tmpdir` (created if missing); else the fatal message. */
export async function tmpdirProblem(tmpdir: string): Promise<string | null> {
  const dir = path.resolve(tmpdir);
  const explain = (err: NodeJS.ErrnoException): string => {
    const why = err.code === "ENOTDIR" || err.code === "EEXIST" ? "it, or one of its parents, is a file, not a directory"
      : err.code === "EACCES" || err.code === "EPERM" ? "permission denied for this user"
      : err.code === "EROFS" ? "it is on a read-only file system"
      : err.code === "ENOSPC" ? "the disk is full"
      : err.message;
    return `--tmpdir ${dir} is not writable (${err.code ?? "error"}: ${why}). The agent makes one directory per job there; ` +
      `create it (mkdir -p ${dir}), give it to the agent's user (chown), or choose another --tmpdir (INGINIOUS_AGENT_TMPDIR)`;
  };
  try {
    await fs.mkdir(dir, { recursive: true });
    const st = await fs.stat(dir);
    if (!st.isDirectory()) return explain(Object.assign(new Error("not a directory"), { code: "ENOTDIR" }));
  } catch (err) {
    return explain(err as NodeJS.ErrnoException);
  }
  const probe = path.join(dir, `.write-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await fs.writeFile(probe, "");
  } catch (err) {
    return explain(err as NodeJS.ErrnoException);
  }
  await fs.rm(probe, { force: true });
  return null;
}

// ---- --tasks present -----------------------------------------------------------------------

/** Null when `tasks` is a readable directory; else the warning (farms often sync tasks after start). */
export async function tasksProblem(tasks: string): Promise<string | null> {
  const dir = path.resolve(tasks);
  const consequence = "jobs will end as crash (\"Task unavailable on agent\") until the courses are there; " +
    "sync the backend's tasks folder to it, or fix --tasks (INGINIOUS_AGENT_TASKS)";
  try {
    const st = await fs.stat(dir);
    if (!st.isDirectory()) return `--tasks ${dir} is not a directory: ${consequence}`;
    await fs.readdir(dir);
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") return `--tasks ${dir} does not exist (yet): ${consequence}`;
    return `--tasks ${dir} cannot be read (${e.code ?? e.message}): ${consequence}`;
  }
}

// ---- grading images ------------------------------------------------------------------------

/**
 * Null when at least one environment is usable; else the warning. `ignored` counts labelled
 * images the agent could not use (another agent version, need_root without a root runtime...).
 */
export function gradingImageAdvice(usable: number, ignored: number): string | null {
  if (usable > 0) return null;
  const seen = ignored > 0
    ? `${ignored} image(s) labelled ${LABEL_NAME} were found but none fits this agent (see the warnings about them: agent version, need_root, need_gpu, ports). `
    : "";
  return `no grading image found: ${seen}Every job will end as crash ("environment is not available") until one exists. ` +
    `Build the sample images with images/build.sh, or pull or build INGInious's grading images (labelled ${LABEL_NAME} and ` +
    `org.inginious.grading.agent_version=4) on this engine; the agent lists images again before each hello, so no restart is needed ` +
    `once the backend reconnects`;
}

// ---- cgroup v2 and out-of-memory -----------------------------------------------------------

export interface CgroupFacts {
  /** `docker info` CgroupVersion. */
  version: string | undefined;
  /** `docker info` CgroupDriver. */
  driver: string | undefined;
  /** Where the containers' cgroups (and their memory.events) live for this driver. */
  eventsDir: string;
  /** Null when that directory can be read from here; else why not. */
  eventsDirProblem: string | null;
  /** The agent sets memory.oom.group to 1 in each container (see limits/oom-group.ts). */
  oomGroupSet?: boolean;
}

/** Where Docker puts its containers' cgroups on a cgroup v2 host (default cgroup parent). */
export function containerCgroupDir(driver: string | undefined, root = "/sys/fs/cgroup"): string {
  return driver === "systemd" ? `${root}/system.slice` : `${root}/docker`;
}

/**
 * Null on cgroup v1 (the agent disables the OOM killer in its containers and kills them on the
 * engine's oom event: every overflow is told apart). On cgroup v2 Docker leaves the container's
 * memory.oom.group at 0 and has no option to set it, so the kernel kills one process, not the
 * container; the agent then relies on the container's memory.events and Docker's OOMKilled flag.
 */
export function cgroupAdvice(f: CgroupFacts): string | null {
  // With memory.oom.group at 1 an overflow kills the whole container: the grader cannot go on.
  if (f.version !== "2" || f.oomGroupSet === true) return null;
  const policy = "cgroup v2: memory overflows cannot always be told apart. Docker leaves memory.oom.group at 0 in containers " +
    "(it has no option to set it), so on overflow the kernel kills one process of a grading container, not the whole container, " +
    "and the grader may go on and report a result of its own. ";
  if (f.eventsDirProblem !== null) {
    return policy + `The agent counts oom_kill in each container's memory.events under ${f.eventsDir}, which it cannot read here ` +
      `(${f.eventsDirProblem}); only Docker's OOMKilled flag is left, and it is false when a child process was the one killed. ` +
      "Run the agent on the host, or give its container the host's cgroup namespace (docker run --cgroupns=host). " +
      "On a cgroup v1 host (docker info --format '{{.CgroupVersion}}' says 1) every overflow is told apart.";
  }
  return policy + `The agent reads the oom_kill count of each container's memory.events under ${f.eventsDir} every second ` +
    "and reports overflow when it is not 0; an overflow in the last second before the grader exits can still be missed. " +
    "On a cgroup v1 host (docker info --format '{{.CgroupVersion}}' says 1) every overflow is told apart.";
}

async function cgroupFacts(info: { CgroupVersion?: string; CgroupDriver?: string }): Promise<CgroupFacts> {
  const eventsDir = containerCgroupDir(info.CgroupDriver);
  let problem: string | null = null;
  if (info.CgroupVersion === "2") {
    try {
      const st = await fs.statfs("/sys/fs/cgroup");
      if (st.type !== 0x63677270) problem = "/sys/fs/cgroup is not a cgroup v2 file system here";
      else await fs.readdir(eventsDir);
    } catch (err) {
      problem = (err as NodeJS.ErrnoException).code === "ENOENT" ? `${eventsDir} does not exist here` : (err as Error).message;
    }
  }
  return { version: info.CgroupVersion, driver: info.CgroupDriver, eventsDir, eventsDirProblem: problem };
}

// ---- running in a container: same --tmpdir path for the engine -----------------------------

/**
 * Whether this process runs in a container: "strong" when /proc says so (PID 1's cgroup, or
 * Docker's /etc/hostname bind in mountinfo), "weak" when only /.dockerenv exists (some VMs
 * built from container images keep it), null otherwise.
 */
export function containerEvidence(root = "/"): "strong" | "weak" | null {
  const read = (p: string): string => {
    try {
      return readFileSync(path.join(root, p), "utf8");
    } catch {
      return "";
    }
  };
  if (/docker|containerd|kubepods|libpod/.test(read("proc/1/cgroup"))) return "strong";
  if (/\/containers\/[0-9a-f]{64}\/(hostname|hosts|resolv\.conf)/.test(read("proc/self/mountinfo"))) return "strong";
  if (existsSync(path.join(root, ".dockerenv"))) return "weak";
  return null;
}

/** Whether to check that --tmpdir is the same directory for the engine (a probe container costs ~0.2 s). */
export function shouldProbeHostPath(evidence: "strong" | "weak" | null, hostname: string, engineName: string | undefined): boolean {
  if (evidence === "strong") return true;
  // A container's host name is its id, not the engine host's name.
  return evidence === "weak" && hostname !== engineName;
}

export type HostPathVerdict = { same: true } | { same: false; message: string } | { same: null; reason: string };

/** Decides from what the engine said about a probe file written in tmpdir (pure). */
export function hostPathVerdict(tmpdir: string, outcome: "found" | "missing-file" | "missing-dir" | { error: string }): HostPathVerdict {
  if (outcome === "found") return { same: true };
  const fix = `The job directories are bound into grading containers by their path, which the engine resolves on its own host: ` +
    `mount the host directory at the same path in the agent's container (docker run -v ${tmpdir}:${tmpdir} ... --tmpdir ${tmpdir}), ` +
    `or run the agent on the engine's host`;
  if (outcome === "missing-dir") {
    return { same: false, message: `--tmpdir ${tmpdir} does not exist on the Docker engine's host (the agent runs in a container, or the engine is remote). ${fix}` };
  }
  if (outcome === "missing-file") {
    return { same: false, message: `--tmpdir ${tmpdir} is not the same directory for the agent and for the Docker engine: a file the agent wrote there is not in ${tmpdir} on the engine's host. ${fix}` };
  }
  return { same: null, reason: outcome.error };
}

/**
 * Writes a probe file in tmpdir and asks the engine whether the same path on its host holds it:
 * creates (never starts) a container of `image` with tmpdir bound read-only, reads the file
 * through the archive API, removes the container and the file.
 */
export async function probeHostPath(docker: Docker, tmpdir: string, image: string): Promise<HostPathVerdict> {
  const name = `.host-path-probe-${process.pid}-${randomBytes(4).toString("hex")}`;
  const file = path.join(tmpdir, name);
  await fs.writeFile(file, "inginious-agent-docker probe\n");
  let container: Docker.Container | null = null;
  try {
    try {
      container = await docker.createContainer({
        Image: image,
        Entrypoint: ["/bin/true"],
        Cmd: [],
        NetworkDisabled: true,
        Labels: { [LABEL_AGENT]: agentId(tmpdir), [LABEL_ROLE]: "probe" },
        HostConfig: {
          NetworkMode: "none",
          Mounts: [{ Type: "bind", Source: tmpdir, Target: "/inginious-agent-probe", ReadOnly: true }],
        },
      });
    } catch (err) {
      const text = (err as Error).message;
      if (/bind source path does not exist|no such file or directory/i.test(text)) return hostPathVerdict(tmpdir, "missing-dir");
      return hostPathVerdict(tmpdir, { error: text });
    }
    try {
      const stream = await container.getArchive({ path: `/inginious-agent-probe/${name}` });
      stream.resume();
      await new Promise<void>((resolve) => {
        stream.on("end", resolve);
        stream.on("error", () => resolve());
      });
      return hostPathVerdict(tmpdir, "found");
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return hostPathVerdict(tmpdir, "missing-file");
      return hostPathVerdict(tmpdir, { error: (err as Error).message });
    }
  } finally {
    if (container !== null) await container.remove({ force: true }).catch(() => {});
    await fs.rm(file, { force: true });
  }
}

// ---- all of them ---------------------------------------------------------------------------

interface DockerInfo {
  Name?: string;
  CgroupVersion?: string;
  CgroupDriver?: string;
}

/**
 * Runs every check and logs each problem; returns the problems (fatal ones first are not
 * reordered: they are logged in the order found). The agent must exit 1 when one is fatal.
 */
export async function runStartChecks(
  config: Pick<AgentConfig, "tmpdir" | "tasks">, docker: Docker, log: Logger,
  options: { probeHostPath?: boolean; pingTimeoutMs?: number; cgroupRoot?: string } = {},
): Promise<CheckMessage[]> {
  const found: CheckMessage[] = [];
  const report = (m: CheckMessage): void => {
    found.push(m);
    if (m.level === "fatal") log.fatal({ check: m.check }, m.message);
    else log.warn({ check: m.check }, m.message);
  };
  const tmpdir = path.resolve(config.tmpdir);

  const tmp = await tmpdirProblem(tmpdir);
  if (tmp !== null) report({ level: "fatal", check: "tmpdir", message: tmp });

  const tasks = await tasksProblem(config.tasks);
  if (tasks !== null) report({ level: "warn", check: "tasks", message: tasks });

  let info: DockerInfo | null = null;
  try {
    const timeoutMs = options.pingTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    info = (await Promise.race([
      docker.info(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer))) as DockerInfo;
  } catch (err) {
    report({ level: "fatal", check: "docker", message: dockerUnreachableMessage(err, dockerAddress()) });
  }
  if (info === null) return found;

  const oomGroup = await oomGroupProblem(info.CgroupVersion, info.CgroupDriver, options.cgroupRoot ?? agentCgroupRoot());
  if (oomGroup !== null) report({ level: "warn", check: "oom-group", message: oomGroupAdvice(oomGroup) });
  else if (info.CgroupVersion === "2") log.info({ check: "oom-group" }, "cgroup v2: the agent sets memory.oom.group to 1 in each container as it starts");
  const cgroup = cgroupAdvice({ ...(await cgroupFacts(info)), oomGroupSet: info.CgroupVersion === "2" && oomGroup === null });
  if (cgroup !== null) report({ level: "warn", check: "cgroup", message: cgroup });

  if (tmp === null && (options.probeHostPath ?? shouldProbeHostPath(containerEvidence(), os.hostname(), info.Name))) {
    let image: string | null = null;
    try {
      const graders = await docker.listImages({ filters: { label: [LABEL_NAME] } });
      image = graders[0]?.Id ?? (await docker.listImages())[0]?.Id ?? null;
    } catch {
      /* answered by the verdict below */
    }
    const verdict: HostPathVerdict = image === null
      ? { same: null, reason: "no image on the engine to make a probe container from" }
      : await probeHostPath(docker, tmpdir, image).catch((err: Error) => ({ same: null, reason: err.message }) as const);
    if (verdict.same === false) report({ level: "fatal", check: "tmpdir-host-path", message: verdict.message });
    else if (verdict.same === null) {
      report({
        level: "warn", check: "tmpdir-host-path",
        message: `the agent seems to run in a container and could not check that --tmpdir ${tmpdir} is the same directory on the Docker engine's host (${verdict.reason}); if jobs fail with missing files, mount it at the same path (-v ${tmpdir}:${tmpdir})`,
      });
    } else log.debug({ tmpdir }, "--tmpdir is the same directory for the engine");
  }
  return found;
}
