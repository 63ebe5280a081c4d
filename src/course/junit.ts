/**
 * JUnit XML for CI systems: one `<testsuite>` per task, one `<testcase>` per test file, a
 * `<failure>` carrying the short diff of a mismatch, an `<error>` for a file that cannot be used
 * or a job that could not run, `<skipped>` for what there is nothing to replay. The layout most
 * CI systems read (GitHub Actions' test reporters, GitLab, Jenkins).
 */
import path from "node:path";
import { countCases, type CaseReport } from "./case-report.js";
import { shortDiff } from "./compare.js";

/** Text safe in XML 1.0 content and attributes: markup escaped, characters XML cannot hold dropped. */
export function xmlEscape(text: string): string {
  return text
    // eslint-disable-next-line no-control-regex -- XML 1.0 names its characters by code point: tab, LF and CR are allowed, other controls are not
    .replace(/[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

function attrs(values: Record<string, string | number>): string {
  return Object.entries(values).map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`).join("");
}

const seconds = (s: number): string => s.toFixed(3);

function testcase(c: CaseReport): string {
  const name = `${c.taskId}/test/${path.basename(c.file)}`;
  const head = `    <testcase${attrs({ classname: `${c.courseId}.${c.taskId}`, name, file: c.file, time: seconds(c.seconds) })}`;
  switch (c.status) {
    case "pass":
    case "recorded":
      return `${head}/>`;
    case "skipped":
      return `${head}>\n      <skipped${attrs({ message: c.message })}/>\n    </testcase>`;
    case "fail": {
      const message = `differs in ${c.mismatches.map((m) => m.field).join(", ")}`;
      const body = c.mismatches.flatMap(shortDiff).join("\n");
      return `${head}>\n      <failure${attrs({ message, type: "mismatch" })}>${xmlEscape(body)}</failure>\n    </testcase>`;
    }
    case "error":
    case "unrun":
      return `${head}>\n      <error${attrs({ message: c.message, type: c.status === "error" ? "unusable" : "not-run" })}/>\n    </testcase>`;
  }
}

/** The XML document for a run's cases, grouped by task in the order they are given. */
export function junitXml(suiteName: string, cases: readonly CaseReport[]): string {
  const byTask = new Map<string, CaseReport[]>();
  for (const c of cases) {
    const key = `${c.courseId}/${c.taskId}`;
    byTask.set(key, [...(byTask.get(key) ?? []), c]);
  }
  const suiteAttrs = (name: string, list: readonly CaseReport[]): string => {
    const n = countCases(list);
    return attrs({
      name,
      tests: n.total,
      failures: n.fail,
      errors: n.error + n.unrun,
      skipped: n.skipped,
      time: seconds(list.reduce((t, c) => t + c.seconds, 0)),
    });
  };
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites${suiteAttrs(suiteName, cases)}>`];
  for (const [name, list] of byTask) {
    lines.push(`  <testsuite${suiteAttrs(name, list)}>`, ...list.map(testcase), "  </testsuite>");
  }
  lines.push("</testsuites>", "");
  return lines.join("\n");
}
