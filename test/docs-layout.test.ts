/**
 * The documentation stays true to the tree: every path the Layout section of docs/design.md names
 * (its bullets and its import-order diagram) exists, every relative link in README.md and
 * docs/*.md reaches an existing file (and, for a markdown file, an existing heading), and the
 * README shows its two commands on its first screen. No Docker; reads files only.
 */
import assert from "node:assert/strict";
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest folder above this file holding package.json (tests run from dist/test/). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

const ROOT = repoRoot();
const read = (rel: string): string => readFileSync(path.join(ROOT, rel), "utf8");

/** The lines of a markdown text, each marked as inside a fenced code block or not. */
function linesWithFences(markdown: string): Array<{ line: string; fenced: boolean }> {
  let fenced = false;
  return markdown.split("\n").map((line) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return { line, fenced: true };
    }
    return { line, fenced };
  });
}

/** The text under a `## title` heading, up to the next heading of level 1 or 2 (subsections included). */
function section(markdown: string, title: string): string {
  const out: string[] = [];
  let inside = false;
  for (const { line, fenced } of linesWithFences(markdown)) {
    if (!fenced && /^#{1,2} /.test(line)) {
      inside = line.replace(/^#+ /, "").trim() === title;
      continue;
    }
    if (inside) out.push(line);
  }
  if (out.length === 0) throw new Error(`no "## ${title}" section`);
  return out.join("\n");
}

const PATH_TOKEN = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.-]+)*\/?$/;
const FILE_EXTENSION = /\.(ts|js|mjs|md|sh|json|py|ya?ml|service|default)$/;

/** A code span that names a repository path: relative, and with a folder or a file extension. */
function looksLikePath(span: string): boolean {
  return PATH_TOKEN.test(span) && (span.includes("/") || FILE_EXTENSION.test(span));
}

interface LayoutPaths {
  paths: string[];
  /** Bullets that do not start with a path in backticks. */
  malformed: string[];
}

/**
 * The paths a Layout section names: the path each bullet starts with (which must be there), the
 * other code spans that look like paths, and the paths in its fenced diagram.
 */
function layoutPaths(layout: string): LayoutPaths {
  const paths = new Set<string>();
  const malformed: string[] = [];
  for (const { line, fenced } of linesWithFences(layout)) {
    if (fenced) {
      for (const token of line.match(/[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*\/[A-Za-z0-9_.-]*/g) ?? []) paths.add(token);
      continue;
    }
    if (/^- /.test(line)) {
      const first = /^- `([^`]+)`/.exec(line);
      if (first === null || !looksLikePath(first[1]!)) malformed.push(line);
      else paths.add(first[1]!);
    }
    for (const m of line.matchAll(/`([^`]+)`/g)) if (looksLikePath(m[1]!)) paths.add(m[1]!);
  }
  return { paths: [...paths], malformed };
}

const missing = (paths: string[]): string[] => paths.filter((p) => !existsSync(path.join(ROOT, p)));

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-");
}

function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { line, fenced } of linesWithFences(markdown)) {
    const h = fenced ? null : /^#{1,6} (.*)$/.exec(line);
    if (h === null) continue;
    const base = slug(h[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Every relative link of a markdown file that does not lead to an existing file or heading. */
function brokenLinks(rel: string): string[] {
  const markdown = read(rel);
  const broken: string[] = [];
  for (const { line, fenced } of linesWithFences(markdown)) {
    if (fenced) continue;
    const prose = line.replace(/`[^`]*`/g, "");
    for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      const [file, fragment] = target.split("#", 2) as [string, string | undefined];
      const resolved = file === "" ? path.join(ROOT, rel) : path.resolve(path.dirname(path.join(ROOT, rel)), file);
      if (!existsSync(resolved)) {
        broken.push(`${rel}: ${target} (no such file)`);
      } else if (fragment !== undefined && resolved.endsWith(".md") && !anchors(readFileSync(resolved, "utf8")).has(fragment)) {
        broken.push(`${rel}: ${target} (no such heading)`);
      }
    }
  }
  return broken;
}

function markdownFiles(): string[] {
  const docs = readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`);
  return ["README.md", ...docs];
}

test("the repository root is found from the compiled test", () => {
  assert.ok(existsSync(path.join(ROOT, "package.json")) && statSync(path.join(ROOT, "src")).isDirectory(), ROOT);
});

test("every path named in the Layout of docs/design.md exists", () => {
  const { paths, malformed } = layoutPaths(section(read("docs/design.md"), "Layout"));
  assert.deepEqual(malformed, [], "each Layout bullet starts with a path in backticks");
  assert.ok(paths.length >= 20, `the Layout names only ${paths.length} paths: ${paths.join(", ")}`);
  for (const folder of ["src/", "workers/", "test/", "bench/"]) {
    assert.ok(paths.some((p) => p.startsWith(folder)), `the Layout names nothing under ${folder}`);
  }
  assert.deepEqual(missing(paths), [], "paths named in docs/design.md's Layout that do not exist");
});

test("the Layout check notices a path that does not exist, in a bullet and in the diagram", () => {
  const layout = [
    "- `src/cli.ts`: the command line.",
    "- `src/no-such-module.ts`: gone.",
    "- not a path first",
    "```",
    "src/cli.ts ──▶ src/agent.ts ──▶ src/no-such-folder/",
    "```",
  ].join("\n");
  const { paths, malformed } = layoutPaths(layout);
  assert.deepEqual(malformed, ["- not a path first"]);
  assert.deepEqual(missing(paths), ["src/no-such-module.ts", "src/no-such-folder/"]);
  assert.ok(!looksLikePath("/metrics") && !looksLikePath("shutil.copytree") && !looksLikePath("tcp://host:1"));
});

test("every relative link in README.md and docs/*.md leads to an existing file and heading", () => {
  const files = markdownFiles();
  assert.ok(files.includes("docs/design.md") && files.length >= 5, files.join(", "));
  assert.deepEqual(files.flatMap(brokenLinks), []);
});

test("the README shows its two commands on the first screen, and both are runnable scripts", () => {
  const firstScreen = read("README.md").split("\n").slice(0, 40).join("\n");
  for (const command of ["examples/demo.sh", "scripts/test.sh"]) {
    assert.match(firstScreen, new RegExp(`^${command.replace(/\./g, "\\.")}\\s`, "m"), `${command} in the README's first 40 lines`);
    accessSync(path.join(ROOT, command), constants.X_OK);
  }
  assert.match(read(".ci/run"), /^exec scripts\/test\.sh$/m, ".ci/run runs scripts/test.sh");
});
