/**
 * The root of the cgroup v2 tree the agent reads and writes its containers' cgroups in (CPU time,
 * memory.events, memory.oom.group): /sys/fs/cgroup, unless INGINIOUS_AGENT_CGROUP_ROOT names
 * another (the host's tree mounted elsewhere when the agent runs in a container, or a test tree).
 * On cgroup v1 the agent reads /sys/fs/cgroup only.
 */
import path from "node:path";

export const CGROUP_ROOT_ENV = "INGINIOUS_AGENT_CGROUP_ROOT";
export const DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup";

/** The cgroup v2 root the agent uses: INGINIOUS_AGENT_CGROUP_ROOT, or /sys/fs/cgroup. */
export function agentCgroupRoot(env: NodeJS.ProcessEnv = process.env): string {
  const value = env[CGROUP_ROOT_ENV]?.trim();
  return value ? path.resolve(value) : DEFAULT_CGROUP_ROOT;
}
