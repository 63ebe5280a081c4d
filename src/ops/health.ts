/**
 * Health of the agent, for `/healthz`: the backend was heard recently, the engine answers
 * (a cached ping: at most one every few seconds, whatever the request rate), and the engine's
 * event stream is open.
 */

export interface HealthSources {
  /** performance.now() of the backend's last message, or null when none came yet. */
  lastBackendMessageAt(): number | null;
  dockerEventsAlive(): boolean;
  docker: { ping(): Promise<unknown> };
}

export interface HealthOptions {
  /** The backend counts as silent after this long (the link's watchdog uses the same 10 s). */
  silenceMs?: number;
  /** A ping result is reused for this long. */
  dockerCacheMs?: number;
  /** A ping that takes longer fails. */
  dockerTimeoutMs?: number;
  now?: () => number;
}

export interface CheckResult {
  ok: boolean;
  /** Why it fails, for an operator. */
  reason?: string;
  [detail: string]: unknown;
}

export interface HealthReport {
  status: "ok" | "failing";
  /** Names of the failing checks. */
  failing: string[];
  /** One sentence per failing check. */
  reasons: string[];
  checks: { backend: CheckResult; docker: CheckResult; docker_events: CheckResult };
}

interface PingResult {
  ok: boolean;
  at: number;
  error?: string;
}

export class HealthChecker {
  private readonly startedAt: number;
  private readonly silenceMs: number;
  private readonly cacheMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private lastPing: PingResult | null = null;
  private inFlight: Promise<PingResult> | null = null;
  /** Pings sent so far (for tests of the cache). */
  pings = 0;

  constructor(private readonly src: HealthSources, options: HealthOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    this.startedAt = this.now();
    this.silenceMs = options.silenceMs ?? 10_000;
    this.cacheMs = options.dockerCacheMs ?? 5_000;
    this.timeoutMs = options.dockerTimeoutMs ?? 3_000;
  }

  /** The engine's last ping, pinging again only when the cached one is older than the cache time. */
  async docker(): Promise<PingResult> {
    if (this.lastPing !== null && this.now() - this.lastPing.at < this.cacheMs) return this.lastPing;
    this.inFlight ??= this.ping().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async ping(): Promise<PingResult> {
    this.pings++;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs / 1000} s`)), this.timeoutMs);
    });
    let result: PingResult;
    try {
      await Promise.race([this.src.docker.ping(), timeout]);
      result = { ok: true, at: this.now() };
    } catch (err) {
      result = { ok: false, at: this.now(), error: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
    this.lastPing = result;
    return result;
  }

  async check(): Promise<HealthReport> {
    const now = this.now();
    const heard = this.src.lastBackendMessageAt();
    const silentMs = now - (heard ?? this.startedAt);
    const backend: CheckResult = {
      ok: silentMs <= this.silenceMs,
      last_message_seconds_ago: heard === null ? null : round(silentMs / 1000),
    };
    if (!backend.ok) {
      backend.reason = heard === null
        ? `no message from the backend since the agent started ${(silentMs / 1000).toFixed(1)} s ago (limit ${this.silenceMs / 1000} s): check the backend address and that the backend runs`
        : `no message from the backend for ${(silentMs / 1000).toFixed(1)} s (limit ${this.silenceMs / 1000} s): the backend is down or unreachable; the agent keeps reconnecting`;
    }
    const ping = await this.docker();
    const docker: CheckResult = { ok: ping.ok, checked_seconds_ago: round((this.now() - ping.at) / 1000) };
    if (!ping.ok) docker.reason = `the Docker engine does not answer its ping (${ping.error}): check that dockerd runs and that the agent may use its socket`;
    const events: CheckResult = { ok: this.src.dockerEventsAlive() };
    if (!events.ok) events.reason = "the engine's event stream is closed (the agent reopens it every second): out-of-memory events could be missed";

    const checks = { backend, docker, docker_events: events };
    const failing = Object.entries(checks).filter(([, c]) => !c.ok).map(([name]) => name);
    return {
      status: failing.length === 0 ? "ok" : "failing",
      failing,
      reasons: Object.entries(checks).filter(([, c]) => !c.ok).map(([name, c]) => `${name}: ${c.reason}`),
      checks,
    };
  }
}

function round(seconds: number): number {
  return Math.round(seconds * 10) / 10;
}
