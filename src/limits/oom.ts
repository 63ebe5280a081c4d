/**
 * Was a container stopped for lack of memory? On cgroup v1 the OOM killer is disabled in our
 * containers and the engine's `oom` event is the signal (the agent then kills the container).
 * On cgroup v2 the kernel kills: the container's State.OOMKilled says so, and the cgroup's
 * memory.events counts `oom_kill`s when it can still be read: it vanishes with the container, so
 * it is read every second while the container runs (followMemoryEvents).
 */
import { readFileSync, watch, type FSWatcher } from "node:fs";
import { agentCgroupRoot } from "./cgroup-root.js";

export interface OomEvidence {
  /** The engine emitted an `oom` event for the container. */
  oomEvent: boolean;
  /** `State` of the container's inspect, after it exited. */
  state?: { OOMKilled?: boolean; ExitCode?: number } | null;
  /** Text of the container cgroup's memory.events (cgroup v2), when read before it went away. */
  memoryEvents?: string | null;
}

/** The `oom_kill` count of a cgroup v2 memory.events text; 0 when absent. */
export function oomKills(memoryEvents: string): number {
  const m = /^oom_kill\s+(\d+)\s*$/m.exec(memoryEvents);
  return m ? parseInt(m[1]!, 10) : 0;
}

export function ranOutOfMemory(e: OomEvidence): boolean {
  if (e.oomEvent) return true;
  if (e.state?.OOMKilled === true) return true;
  if (e.memoryEvents && oomKills(e.memoryEvents) > 0) return true;
  return false;
}

/** Where a container's memory.events lives on a cgroup v2 host, for both cgroup drivers. */
export function memoryEventsPaths(containerId: string, root = agentCgroupRoot()): string[] {
  return [
    `${root}/system.slice/docker-${containerId}.scope/memory.events`,
    `${root}/docker/${containerId}/memory.events`,
  ];
}

/**
 * Whether an exited container may have been OOM-killed, so that an inspect is worth it. On
 * cgroup v1 the OOM killer is off in our containers: the agent kills on the engine's `oom` event
 * (the main thread counts that), so only a killed container (137, or no status) can be one.
 */
export function mayBeOomKilled(cgroupVersion: 1 | 2, exitCode: number): boolean {
  return cgroupVersion !== 1 || exitCode === 137 || exitCode < 0;
}

/**
 * On cgroup v2, keeps the container cgroup's memory.events text. It vanishes with the container,
 * and with Docker's systemd driver at once (systemd removes an empty scope): it is read when the
 * following starts, whenever the kernel says it changed (inotify: an OOM kill changes it), every
 * second besides, and at stop. A text that counts more OOM kills is never replaced by one that
 * counts fewer. Engines whose shim misses the OOM (State.OOMKilled false: seen with Debian 13's
 * docker.io and the systemd driver) are told apart by this alone.
 */
export function followMemoryEvents(containerId: string, cgroupVersion: 1 | 2): MemoryEventsFollower {
  if (cgroupVersion !== 2) return { last: () => null, stop: () => {} };
  return followEventsFile(memoryEventsPaths(containerId));
}

export interface MemoryEventsFollower {
  /** The text that counts the most OOM kills read so far (null: none read). */
  last(): string | null;
  stop(): void;
}

/** followMemoryEvents on the first of `paths` that can be read (one per cgroup driver's layout). */
export function followEventsFile(paths: readonly string[]): MemoryEventsFollower {
  let last: string | null = null;
  const read = (): void => {
    for (const p of paths) {
      try {
        // a small kernel file: read at once, in the same turn as the change it was told of
        const text = readFileSync(p, "utf8");
        if (last === null || oomKills(text) >= oomKills(last)) last = text;
        return;
      } catch {
        /* not this driver's path, or already gone */
      }
    }
  };
  read();
  let watcher: FSWatcher | null = null;
  for (const p of paths) {
    try {
      watcher = watch(p, { persistent: false }, read);
      watcher.on("error", () => {});
      break;
    } catch {
      /* not this driver's path */
    }
  }
  const timer = setInterval(read, 1000);
  timer.unref();
  return {
    last: () => last,
    stop: () => {
      read();
      clearInterval(timer);
      watcher?.close();
    },
  };
}
