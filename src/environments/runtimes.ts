/** Environment types from Docker's runtimes (protocol.md section 3). */
import type { RuntimeSpec } from "../config.js";

/**
 * INGInious's heuristic, made deterministic: runc, then crun, give `docker` (and `docker-ssh`
 * with --ssh); nvidia gives `nvidia` (and `nvidia-ssh`). An exact runtime name wins over a
 * name that only contains it (e.g. `runc` over `io.containerd.runc.v2`).
 */
export function detectRuntimes(available: readonly string[], ssh: boolean): RuntimeSpec[] {
  const families: Array<{ needle: string; envtype: string; gpu: boolean }> = [
    { needle: "runc", envtype: "docker", gpu: false },
    { needle: "crun", envtype: "docker", gpu: false },
    { needle: "nvidia", envtype: "nvidia", gpu: true },
  ];
  const byEnvtype = new Map<string, RuntimeSpec>();
  for (const family of families) {
    const candidates = available
      .filter((name) => name.includes(family.needle))
      .sort((a, b) => Number(b === family.needle) - Number(a === family.needle) || a.localeCompare(b));
    const runtime = candidates[0];
    if (runtime === undefined) continue;
    const envtypes = ssh ? [family.envtype, `${family.envtype}-ssh`] : [family.envtype];
    for (const envtype of envtypes) {
      if (byEnvtype.has(envtype)) continue;
      byEnvtype.set(envtype, { runtime, envtype, runAsRoot: false, shared: true, gpu: family.gpu });
    }
  }
  return [...byEnvtype.values()];
}
