/**
 * memory.oom.group on cgroup v2: set to 1 in each container's cgroup, so that a memory overflow
 * kills the whole container rather than one of its processes. Docker leaves it at 0 and has no
 * option for it, and INGInious's grading images refuse to grade when they read 0 ("Cgroup flag
 * memory.oom.group is not set"). The cgroup exists only once the container started (runc makes
 * it), so the flag is set right after `start`, before the grading container gets its `start`
 * message. Nothing is done on cgroup v1. The root of the cgroup tree is /sys/fs/cgroup unless
 * INGINIOUS_AGENT_CGROUP_ROOT names another (the host's tree mounted elsewhere, or a test tree).
 */
import { constants, promises as fs } from "node:fs";
import { agentCgroupRoot, CGROUP_ROOT_ENV, DEFAULT_CGROUP_ROOT } from "./cgroup-root.js";

export { agentCgroupRoot } from "./cgroup-root.js";
const FLAG = "memory.oom.group";

type Log = {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
};

/** Where a container's memory.oom.group lives, for the systemd and the cgroupfs drivers. */
export function oomGroupFiles(containerId: string, root = DEFAULT_CGROUP_ROOT): string[] {
  return [`${root}/system.slice/docker-${containerId}.scope/${FLAG}`, `${root}/docker/${containerId}/${FLAG}`];
}

/** Why a write was refused, in words an operator can act on. */
function why(err: NodeJS.ErrnoException): string {
  if (err.code === "EACCES" || err.code === "EPERM") return "permission denied: the agent is not root";
  if (err.code === "EROFS") return "the cgroup tree is mounted read-only here";
  return err.code ?? err.message;
}

/** Writes 1 to the first of `files` that exists, never creating one; the reason when none took it. */
async function writeFlag(files: string[]): Promise<{ file: string } | { reason: string }> {
  let refused: string | null = null;
  for (const file of files) {
    try {
      // r+: an existing file only (a cgroup's files are the kernel's; a missing one is not ours to make).
      await fs.writeFile(file, "1", { flag: "r+" });
      return { file };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== "ENOENT") refused ??= `${file}: ${why(e)}`;
    }
  }
  return { reason: refused ?? `no cgroup for the container at ${files.join(" or ")}` };
}

let warned = false;

/**
 * On cgroup v2, sets memory.oom.group to 1 in the cgroup of a container that was just started;
 * true when set, false when it could not be (logged: a warning the first time in this thread,
 * debug after), null on cgroup v1 (nothing looked at). Never throws: the job goes on either way.
 */
export async function setOomGroup(
  containerId: string, settings: { cgroupVersion: 1 | 2 }, log: Log, root: string = agentCgroupRoot(),
): Promise<boolean | null> {
  if (settings.cgroupVersion !== 2) return null;
  // Ids come from the engine; a path is never built from anything else.
  if (!/^[0-9a-f]{12,64}$/.test(containerId)) {
    log.warn({ container: containerId }, `${FLAG} not set: not a container id`);
    return false;
  }
  const done = await writeFlag(oomGroupFiles(containerId, root));
  if ("file" in done) {
    log.debug({ file: done.file }, `${FLAG} set to 1`);
    return true;
  }
  const message = `${FLAG} could not be set to 1 (${done.reason}): on overflow the kernel kills one process, ` +
    "not the container, and INGInious's grading images end the job as crash; see the oom-group check at start";
  if (warned) log.debug({ container: containerId }, message);
  else log.warn({ container: containerId }, message);
  warned = true;
  return false;
}

// ---- the start-up check -------------------------------------------------------------------

/** Where Docker puts its containers' cgroups on a cgroup v2 host (default cgroup parent). */
function containersDir(driver: string | undefined, root: string): string {
  return driver === "systemd" ? `${root}/system.slice` : `${root}/docker`;
}

const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

/**
 * Null on cgroup v1 (nothing to set) or when the agent can write memory.oom.group in the
 * directory that holds the containers' cgroups (the file of that parent cgroup stands for its
 * children's: same owner, same mount); else why not. Writes nothing.
 */
export async function oomGroupProblem(version: string | undefined, driver: string | undefined, root: string): Promise<string | null> {
  if (version !== "2") return null;
  const dir = containersDir(driver, root);
  try {
    await fs.access(`${dir}/${FLAG}`, constants.W_OK);
    return null;
  } catch (err) {
    if (errno(err) !== "ENOENT") return `${dir}/${FLAG}: ${why(err as NodeJS.ErrnoException)}`;
  }
  const isDir = await fs.stat(dir).then((st) => st.isDirectory(), () => false);
  if (isDir) return `${dir}/${FLAG} does not exist: the memory controller is not enabled for ${dir}`;
  // With the cgroupfs driver, docker/ appears with the first container: a writable v2 root will do.
  const isTree = await fs.access(`${root}/cgroup.controllers`).then(() => true, () => false);
  if (!isTree) {
    return `${root} is not the host's cgroup v2 tree here (no ${dir}, no ${root}/cgroup.controllers): ` +
      "the agent runs in a container without the host's cgroup tree, or the tree is mounted elsewhere";
  }
  if (driver === "systemd") return `${dir} does not exist under ${root}`;
  return fs.access(root, constants.W_OK).then(() => null, (err: NodeJS.ErrnoException) => `${root}: ${why(err)}`);
}

/** The start-up warning for a problem found by oomGroupProblem. */
export function oomGroupAdvice(problem: string): string {
  return `cgroup v2: the agent cannot set ${FLAG} to 1 in its containers' cgroups (${problem}). Docker leaves it at 0: ` +
    "on overflow the kernel kills one process of a container, not the container, and INGInious's grading images end " +
    "every job as crash (\"Cgroup flag memory.oom.group is not set\"). Fix: run the agent as root on the host; in a container, " +
    `run it as root with the host's cgroup tree mounted read-write and ${CGROUP_ROOT_ENV} naming it ` +
    `(docker run -v /sys/fs/cgroup:/host-cgroup -e ${CGROUP_ROOT_ENV}=/host-cgroup ...). ` +
    "Images that do not read the flag still grade";
}

/** Only for tests: the next failure warns again. */
export function resetOomGroupWarning(): void {
  warned = false;
}
