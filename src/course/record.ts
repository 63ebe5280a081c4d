/**
 * `test --record`: writes a job's result into its test file, so that a course can start its test
 * set from its own tasks and refresh it after a deliberate change (the author reviews the diff
 * in git). A file that records no result yet gets every field; a file that records some keeps to
 * those (a field removed on purpose is not compared, and stays removed; one set to null stays
 * null). The file is edited as text: only the top-level entries whose value changed are
 * rewritten, so the input, other exported fields, comments and layout stay as they were.
 */
import { promises as fs } from "node:fs";
import { isMap, isScalar, type Document } from "yaml";
import type { AgentJobDone } from "../protocol/messages.js";
import { deepEqual, resultFields } from "./compare.js";
import { RECORDED_FIELDS } from "./test-files.js";
import { newYamlDocument, parseYamlDocument, yamlText, YamlFileError } from "./yaml11.js";

export interface RecordIds {
  courseId: string;
  taskId: string;
}

interface Span {
  start: number;
  end: number;
}

const lineStart = (text: string, offset: number): number => text.lastIndexOf("\n", offset - 1) + 1;

/** Where each top-level entry is in the text: its key's line to its last line of content. */
function entrySpans(text: string, doc: Document): Map<string, Span> {
  const spans = new Map<string, Span>();
  if (!isMap(doc.contents)) return spans;
  const items = doc.contents.items;
  items.forEach((pair, i) => {
    const key = pair.key;
    const next = items[i + 1]?.key;
    if (!isScalar(key) || key.range == null) return;
    const start = lineStart(text, key.range[0]);
    const end = next != null && isScalar(next) && next.range != null ? lineStart(text, next.range[0]) : text.length;
    const lines = text.slice(start, end).split(/(?<=\n)/);
    // comments and blank lines before the next entry stay with it
    while (lines.length > 1 && /^\s*(#.*)?\n?$/.test(lines[lines.length - 1]!)) lines.pop();
    spans.set(String(key.value), { start, end: start + lines.join("").length });
  });
  return spans;
}

const entryText = (key: string, value: unknown): string => yamlText(newYamlDocument({ [key]: value }));

/** The new values of the file's fields: courseid and taskid when missing, and the recorded fields. */
function wanted(current: Record<string, unknown>, ids: RecordIds, done: AgentJobDone): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!("courseid" in current)) out.set("courseid", ids.courseId); // INGInious's tools find the task from these
  if (!("taskid" in current)) out.set("taskid", ids.taskId);
  const present = RECORDED_FIELDS.filter((f) => f in current);
  const values = resultFields(done);
  for (const field of present.length > 0 ? present : RECORDED_FIELDS) {
    if (present.length > 0 && current[field] === null) continue;
    if (!deepEqual(current[field], values[field]) || !(field in current)) out.set(field, values[field]);
  }
  return out;
}

/** The text with the changed entries replaced in place and the new ones appended. */
function edited(text: string, spans: Map<string, Span>, changes: Map<string, unknown>): string {
  const replaced = [...changes].filter(([k]) => spans.has(k)).sort(([a], [b]) => spans.get(b)!.start - spans.get(a)!.start);
  let out = text;
  for (const [key, value] of replaced) {
    const { start, end } = spans.get(key)!;
    out = out.slice(0, start) + entryText(key, value) + out.slice(end);
  }
  const added = [...changes].filter(([k]) => !spans.has(k));
  if (added.length > 0 && out !== "" && !out.endsWith("\n")) out += "\n";
  return out + added.map(([k, v]) => entryText(k, v)).join("");
}

/** Writes the result into the file; true when its text changed. */
export async function recordResult(file: string, ids: RecordIds, done: AgentJobDone): Promise<boolean> {
  const before = await fs.readFile(file, "utf8");
  const doc = parseYamlDocument(before, file);
  if (!isMap(doc.contents)) throw new YamlFileError(file, null, "expected a mapping of fields at the top level");
  const current = doc.toJS() as Record<string, unknown>;
  const changes = wanted(current, ids, done);
  if (changes.size === 0) return false;
  let after = edited(before, entrySpans(before, doc), changes);
  const check = parseYamlDocument(after, file).toJS() as Record<string, unknown>;
  const expected = { ...current, ...Object.fromEntries(changes) };
  if (!deepEqual(check, expected)) {
    // a layout the text edit cannot handle: rewrite the whole document (comments kept)
    for (const [key, value] of changes) doc.set(key, doc.createNode(value));
    after = yamlText(doc);
  }
  await fs.writeFile(file, after);
  return true;
}
