/**
 * CPU time a container has used, read straight from its cgroup when this process can see it:
 * a file read instead of a stats request, which costs the engine a collection of every figure.
 * Both cgroup drivers' layouts; null when none is readable (the agent in a container, say).
 */
import { readFileSync } from "node:fs";
import { agentCgroupRoot, DEFAULT_CGROUP_ROOT } from "./cgroup-root.js";

/** `root`: the tree's root, by default the agent's (cgroup-root.ts) on v2 and /sys/fs/cgroup on v1. */
export function cgroupCpuFiles(containerId: string, version: 1 | 2, root = version === 2 ? agentCgroupRoot() : DEFAULT_CGROUP_ROOT): string[] {
  if (version === 1) {
    return [
      `${root}/cpuacct/docker/${containerId}/cpuacct.usage`,
      `${root}/cpu,cpuacct/docker/${containerId}/cpuacct.usage`,
      `${root}/cpuacct/system.slice/docker-${containerId}.scope/cpuacct.usage`,
      `${root}/cpu,cpuacct/system.slice/docker-${containerId}.scope/cpuacct.usage`,
    ];
  }
  return [`${root}/system.slice/docker-${containerId}.scope/cpu.stat`, `${root}/docker/${containerId}/cpu.stat`];
}

/** Nanoseconds from cpuacct.usage (v1) or the usage_usec line of cpu.stat (v2); null if unreadable. */
export function parseCgroupCpu(text: string, version: 1 | 2): number | null {
  if (version === 1) {
    const ns = Number(text.trim());
    return text.trim() !== "" && Number.isFinite(ns) ? ns : null;
  }
  const m = /^usage_usec\s+(\d+)\s*$/m.exec(text);
  return m ? Number(m[1]) * 1000 : null;
}

/**
 * A reader of one container's CPU time from its cgroup: the first call finds the file (null when
 * none is readable), the next ones read that file only; null once it is gone with the container.
 */
export function cgroupCpuReader(containerId: string, version: 1 | 2, root?: string): () => number | null {
  let found: string | null = null;
  return () => {
    for (const file of found !== null ? [found] : cgroupCpuFiles(containerId, version, root)) {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch {
        continue;
      }
      const ns = parseCgroupCpu(text, version);
      if (ns !== null) {
        found = file;
        return ns;
      }
    }
    return null;
  };
}

/** A container's CPU time from its cgroup, read once (null: no readable cgroup file). */
export function cgroupCpuNs(containerId: string, version: 1 | 2, root?: string): number | null {
  return cgroupCpuReader(containerId, version, root)();
}
