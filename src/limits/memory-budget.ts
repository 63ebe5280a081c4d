/**
 * Memory admission's arithmetic: how much of the host's memory jobs may reserve (the host's
 * memory less a reserve for the system and the agent), and which holders reserve how much of it
 * right now. A job reserves its memory limit when it leaves the queue, each of its student
 * containers the limit it asks for, each warm container its own; each reservation is released
 * when its container is gone. Pure bookkeeping: it neither waits nor asks the host anything but
 * in `hostMemoryMb`, and decides nothing about order (that is the dispatcher's).
 */
import os from "node:os";

/** Variable that overrides the host memory the agent sees, in MB (tests; agents in a container with a memory limit). */
export const HOST_MEMORY_ENV = "INGINIOUS_AGENT_HOST_MEMORY";
/** The frontend's default memory limit for a task, in MB (INGInious's generic_docker_oci_runtime). */
export const FRONTEND_DEFAULT_MEMORY_MB = 1024;
/** Holder group of the warm containers (jobs are grouped by their id). */
export const WARM_GROUP = "\0warm";

/** The host's memory in MB: HOST_MEMORY_ENV when set (a positive whole number), else the kernel's figure. */
export function hostMemoryMb(env: NodeJS.ProcessEnv = process.env): number {
  const set = env[HOST_MEMORY_ENV];
  if (set !== undefined && set.trim() !== "") {
    if (!/^\s*\d+\s*$/.test(set) || parseInt(set, 10) <= 0) {
      throw new Error(`${HOST_MEMORY_ENV}: expected the host's memory in MB (a positive whole number), got ${JSON.stringify(set)}`);
    }
    return parseInt(set, 10);
  }
  return Math.floor(os.totalmem() / 1024 / 1024);
}

/** The reserve when --memory-reserve is not given: a tenth of the host's memory, from 256 MB to 2,048 MB. */
export function defaultReserveMb(hostMb: number): number {
  return Math.min(2048, Math.max(256, Math.round(hostMb / 10)));
}

/** What jobs, student and warm containers may reserve in all: the host's memory less the reserve (at least 0). */
export function usableMemoryMb(hostMb: number, reserveMb: number | null | undefined): number {
  return Math.max(0, hostMb - (reserveMb ?? defaultReserveMb(hostMb)));
}

/** The start-up warning when `concurrency` jobs of the frontend's default memory cannot all run at once; null when they can. */
export function memoryAdvice(concurrency: number, usableMb: number): string | null {
  const wanted = concurrency * FRONTEND_DEFAULT_MEMORY_MB;
  if (wanted <= usableMb) return null;
  const together = Math.floor(usableMb / FRONTEND_DEFAULT_MEMORY_MB);
  return `--concurrency ${concurrency} x ${FRONTEND_DEFAULT_MEMORY_MB} MB (the frontend's default memory limit) is ${wanted} MB, more than the ${usableMb} MB jobs may use here (host memory less --memory-reserve): `
    + `only ${together} such job(s) run at once, the others wait in the queue for memory; lower --concurrency or add memory`;
}

export class MemoryBudget {
  /** Reservations by group (a job id, or WARM_GROUP), then by holder name. */
  private readonly holds = new Map<string, Map<string, number>>();
  private total = 0;

  constructor(readonly usableMb: number) {}

  /** MB reserved right now. */
  get reservedMb(): number {
    return this.total;
  }

  /** MB not reserved (never below 0). */
  get freeMb(): number {
    return Math.max(0, this.usableMb - this.total);
  }

  /** Whether `mb` more can be reserved now (a change of 0 or less always fits). */
  fits(mb: number): boolean {
    return mb <= 0 || this.total + mb <= this.usableMb;
  }

  /** Whether `mb` could ever be reserved: with nothing else reserved. */
  couldEverFit(mb: number): boolean {
    return mb <= this.usableMb;
  }

  /** MB a group holds. */
  heldBy(group: string): number {
    let n = 0;
    for (const mb of this.holds.get(group)?.values() ?? []) n += mb;
    return n;
  }

  /** Groups holding memory now. */
  groups(): string[] {
    return [...this.holds.keys()];
  }

  /** Reserves `mb` for a holder if it fits; false (nothing reserved) if not or if the holder already holds some. */
  reserve(group: string, name: string, mb: number): boolean {
    const byName = this.holds.get(group);
    if (byName?.has(name) === true || !this.fits(mb)) return false;
    if (byName === undefined) this.holds.set(group, new Map([[name, mb]]));
    else byName.set(name, mb);
    this.total += mb;
    return true;
  }

  /** Releases a holder's reservation; returns the MB released (0 if it held none). */
  release(group: string, name: string): number {
    const byName = this.holds.get(group);
    const mb = byName?.get(name);
    if (byName === undefined || mb === undefined) return 0;
    byName.delete(name);
    if (byName.size === 0) this.holds.delete(group);
    this.total -= mb;
    return mb;
  }

  /** Releases every reservation of a group (a job whose containers are all gone); returns the MB released. */
  releaseGroup(group: string): number {
    const mb = this.heldBy(group);
    this.holds.delete(group);
    this.total -= mb;
    return mb;
  }
}
