/** A folder tree as data, to check that nothing in it was written, created or removed. */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

/** Every file of a tree with its content, and every folder as "<dir>", by relative path. */
export function treeSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    out[path.relative(dir, p)] = e.isFile() ? readFileSync(p, "utf8") : "<dir>";
  }
  return out;
}
