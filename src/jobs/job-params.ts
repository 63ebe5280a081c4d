/** Reads a job's environment_parameters into the limits the agent enforces (protocol.md section 2). */

export interface JobLimits {
  /** CPU seconds. */
  time: number;
  /** Wall-clock seconds. */
  hardTime: number;
  /** Megabytes of memory (no swap). */
  memoryMb: number;
  /** Megabytes of disk the job may write; null when not asked. */
  diskMb: number | null;
}

export interface JobParameters {
  limits: JobLimits;
  networkGrading: boolean;
  runCmd: string | null;
}

export class JobParametersError extends Error {}

/** Python's int(): a whole or fractional number, or a string holding an integer. */
function toInt(v: unknown, what: string): number {
  if (typeof v === "number" && Number.isFinite(v)) return Math.trunc(v);
  if (typeof v === "string" && /^\s*[+-]?\d+\s*$/.test(v)) return parseInt(v, 10);
  if (typeof v === "boolean") return v ? 1 : 0;
  throw new JobParametersError(`${what} is not a number: ${JSON.stringify(v)}`);
}

export function parseJobParameters(params: Record<string, unknown>): JobParameters {
  const rawLimits = params["limits"] ?? {};
  if (typeof rawLimits !== "object" || rawLimits === null || Array.isArray(rawLimits)) {
    throw new JobParametersError("limits is not a map");
  }
  const limits = rawLimits as Record<string, unknown>;
  const time = toInt(limits["time"] ?? 30, "limits.time");
  const hardRaw = limits["hard_time"];
  const hardTime = hardRaw === null || hardRaw === undefined || hardRaw === 0 ? time * 3 : toInt(hardRaw, "limits.hard_time");
  const memoryMb = toInt(limits["memory"] ?? 200, "limits.memory");
  const diskRaw = limits["disk"];
  const diskMb = diskRaw === null || diskRaw === undefined ? null : toInt(diskRaw, "limits.disk");
  if (time <= 0) throw new JobParametersError(`limits.time must be positive, got ${time}`);
  if (hardTime <= 0) throw new JobParametersError(`limits.hard_time must be positive, got ${hardTime}`);
  const runCmd = params["run_cmd"];
  if (runCmd !== null && runCmd !== undefined && typeof runCmd !== "string") {
    throw new JobParametersError("run_cmd is not a string");
  }
  return {
    limits: { time, hardTime, memoryMb, diskMb },
    networkGrading: Boolean(params["network_grading"]),
    runCmd: runCmd ?? null,
  };
}
