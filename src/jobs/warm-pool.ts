/**
 * Grading containers created and started ahead of time, waiting for `start` on stdin with their
 * job directory already bound (network none, no ports). A job that fits (same environment, no
 * network, no ports) takes one and skips container create and start: most of a trivial job's
 * latency. A container serves one job, never two.
 *
 * Sizing: only environments that served a job in the last `demandWindowMs` get warm containers,
 * at most `cap` each, and never more in all than the slots free right now, so that warm
 * containers never stand where a job needs a slot, nor more than the memory not reserved right
 * now holds (each is sized like its environment's latest job).
 *
 * Timing: making a container costs the engine and the machine about as much as a trivial job,
 * and a job running beside it waits for both. So an environment whose jobs come with pauses
 * between them gets its replacements once no job runs (in the pause); one whose jobs come back
 * to back has no pause to wait for and gets them at once. An environment with no container
 * ready nor under way gets them at once in any case, so that a busy machine delays a paced
 * environment's replacements but never leaves it without one for long.
 *
 * Pure bookkeeping: the agent creates and removes the containers.
 */

/** See WarmPool.settleMsFor. */
export const WARM_PROBATION_SETTLE_MS = 1000;

/**
 * A job that arrives sooner than this after its environment's previous job ended (or while
 * another is open) finds its environment busy: see WarmPool.plan. About what it takes to create
 * and start a warm container here: one started at a job's end would not be ready for it.
 */
export const BACK_TO_BACK_GAP_MS = 500;

export interface WarmContainer {
  containerId: string;
  jobDir: string;
  envKey: string;
  /** CPU time (ns) the container had used when it became ready: not the job's (null: see WarmCreated). */
  cpuBaselineNs: number | null;
  /** Its memory limit: a job that asks for the same needs no update before it starts. */
  memoryMb: number;
}

export class WarmPool {
  private readonly ready = new Map<string, WarmContainer[]>();
  private readonly creating = new Map<string, number>();
  private readonly lastDemand = new Map<string, number>();
  /** The memory limit of the latest job of each environment: what its next job likely asks for. */
  private readonly lastMemoryMb = new Map<string, number>();
  /** Environments whose warm containers died before any job used them: not warmed again. */
  private readonly unwarmable = new Set<string>();
  private readonly earlyDeaths = new Map<string, number>();
  /** Environments a warm container has served (gave a result): their containers are ready once started. */
  private readonly served = new Set<string>();
  /** Jobs of each environment accepted and not ended yet. */
  private readonly open = new Map<string, number>();
  /** When each environment's latest job ended. */
  private readonly lastEnd = new Map<string, number>();
  /** Environments whose latest job came back to back with the one before (see BACK_TO_BACK_GAP_MS). */
  private readonly backToBack = new Set<string>();

  constructor(
    readonly cap: number,
    private readonly demandWindowMs = 120_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.cap > 0;
  }

  /** Warm containers ready, in all environments. */
  get size(): number {
    let n = 0;
    for (const list of this.ready.values()) n += list.length;
    return n;
  }

  private inFlight(): number {
    let n = 0;
    for (const c of this.creating.values()) n += c;
    return n;
  }

  /** A job of this environment was accepted; each such job is ended once with noteJobEnded. */
  noteDemand(envKey: string, memoryMb: number): void {
    const now = this.now();
    const open = this.open.get(envKey) ?? 0;
    const gap = open > 0 ? 0 : now - (this.lastEnd.get(envKey) ?? -Infinity);
    this.open.set(envKey, open + 1);
    if (gap < BACK_TO_BACK_GAP_MS) this.backToBack.add(envKey);
    else this.backToBack.delete(envKey);
    if (this.unwarmable.has(envKey)) return;
    this.lastDemand.set(envKey, now);
    this.lastMemoryMb.set(envKey, memoryMb);
  }

  /** A job counted by noteDemand ended (its result is out, or it was refused or killed). */
  noteJobEnded(envKey: string): void {
    const n = (this.open.get(envKey) ?? 1) - 1;
    if (n > 0) this.open.set(envKey, n);
    else this.open.delete(envKey);
    this.lastEnd.set(envKey, this.now());
  }

  /** The memory limit to give this environment's next warm container (null: no job seen yet). */
  memoryFor(envKey: string): number | null {
    return this.lastMemoryMb.get(envKey) ?? null;
  }

  /** A warm container of this environment died unused; after two, the environment stays cold. */
  noteEarlyDeath(envKey: string): boolean {
    const n = (this.earlyDeaths.get(envKey) ?? 0) + 1;
    this.earlyDeaths.set(envKey, n);
    if (n >= 2) {
      this.unwarmable.add(envKey);
      this.lastDemand.delete(envKey);
      return true;
    }
    return false;
  }

  /** Containers of this environment being created right now. */
  creatingFor(envKey: string): number {
    return this.creating.get(envKey) ?? 0;
  }

  /** A warm container of this environment gave its job a result. */
  noteServed(envKey: string): void {
    this.served.add(envKey);
  }

  /**
   * How long a new warm container of this environment must keep running after its start before
   * it counts as ready. Until one has served a job, an environment is on probation: an image whose
   * command needs /task before `start` exits within moments, and a job that took such a container
   * at once would get "no result" instead of going cold.
   */
  settleMsFor(envKey: string): number {
    return this.served.has(envKey) ? 0 : WARM_PROBATION_SETTLE_MS;
  }

  /** The ready container `take` would hand out for this environment, left in the pool, or null. */
  peek(envKey: string): WarmContainer | null {
    return this.ready.get(envKey)?.[0] ?? null;
  }

  /** Hands out a ready container for this environment, or null. */
  take(envKey: string): WarmContainer | null {
    const list = this.ready.get(envKey);
    const warm = list?.shift() ?? null;
    return warm;
  }

  /**
   * How many containers to start creating now, per environment, given the free job slots,
   * whether jobs are running (see the timing rule above) and the memory not reserved.
   */
  plan(freeSlots: number, jobsRunning: boolean, freeMemoryMb = Infinity): Map<string, number> {
    const out = new Map<string, number>();
    if (!this.enabled) return out;
    let budget = freeSlots - this.size - this.inFlight();
    const now = this.now();
    const envs = [...this.lastDemand.entries()]
      .filter(([, at]) => now - at <= this.demandWindowMs)
      .sort((a, b) => b[1] - a[1]);
    for (const [envKey] of envs) {
      if (budget <= 0) break;
      const have = (this.ready.get(envKey)?.length ?? 0) + (this.creating.get(envKey) ?? 0);
      const wait = jobsRunning && have > 0 && !this.backToBack.has(envKey);
      const mb = this.lastMemoryMb.get(envKey) ?? 0;
      const want = wait ? 0 : Math.min(this.cap - have, budget, mb > 0 ? Math.floor(freeMemoryMb / mb) : Infinity);
      if (want > 0) {
        out.set(envKey, want);
        budget -= want;
        freeMemoryMb -= want * mb;
      }
    }
    return out;
  }

  creationStarted(envKey: string): void {
    this.creating.set(envKey, (this.creating.get(envKey) ?? 0) + 1);
  }

  /** Records the end of a creation; `warm` is null when it failed. */
  creationEnded(envKey: string, warm: WarmContainer | null): void {
    this.creating.set(envKey, Math.max(0, (this.creating.get(envKey) ?? 1) - 1));
    if (warm === null) return;
    const list = this.ready.get(envKey) ?? [];
    list.push(warm);
    this.ready.set(envKey, list);
  }

  /** Forgets a container that died or was removed; returns it if it was ready here. */
  forget(containerId: string): WarmContainer | null {
    for (const list of this.ready.values()) {
      const i = list.findIndex((w) => w.containerId === containerId);
      if (i >= 0) return list.splice(i, 1)[0]!;
    }
    return null;
  }

  /** Containers ready and no longer wanted: environments without recent demand. */
  stale(): WarmContainer[] {
    const now = this.now();
    const out: WarmContainer[] = [];
    for (const [envKey, list] of this.ready) {
      const at = this.lastDemand.get(envKey) ?? -Infinity;
      if (now - at > this.demandWindowMs) out.push(...list.splice(0));
    }
    return out;
  }

  /** Takes one ready container out of the pool, from the environment whose latest job is the oldest; null when none is ready. */
  drainOne(): WarmContainer | null {
    const envs = [...this.ready.entries()].filter(([, list]) => list.length > 0)
      .sort((x, y) => (this.lastDemand.get(x[0]) ?? -Infinity) - (this.lastDemand.get(y[0]) ?? -Infinity));
    return envs[0]?.[1].shift() ?? null;
  }

  /** Empties the pool (shutdown, restart). */
  drain(): WarmContainer[] {
    const out: WarmContainer[] = [];
    for (const list of this.ready.values()) out.push(...list.splice(0));
    return out;
  }
}
