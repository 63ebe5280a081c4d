/**
 * `test`'s pure parts: reading test files and course folders, comparing a result with its
 * recording as inginious-autotest does, the JUnit XML (parsed back with Python's XML parser), and
 * `--record`'s edit of a test file. No Docker.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { CaseReport } from "../src/course/case-report.js";
import { compareResult, deepEqual, shortDiff } from "../src/course/compare.js";
import { junitXml } from "../src/course/junit.js";
import { recordResult } from "../src/course/record.js";
import { CourseUsageError, findTasks, readTestFile } from "../src/course/test-files.js";
import type { AgentJobDone } from "../src/protocol/messages.js";

function jobDone(fields: Partial<AgentJobDone> = {}): AgentJobDone {
  return {
    type: "AgentJobDone", job_id: "j", result: ["success", "Well done."], grade: 100, problems: {}, tests: {},
    custom: {}, state: "", archive: null, stdout: "", stderr: "", ...fields,
  };
}

let root: string;
before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "iad-course-results-"));
});
after(() => fs.rm(root, { recursive: true, force: true }));

async function write(rel: string, text: string): Promise<string> {
  const file = path.join(root, rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, text);
  return file;
}

describe("comparison, as inginious-autotest", () => {
  test("the same result matches; result, text, grade and state differences are each named", () => {
    const expected = { result: "success", text: "Well done.", grade: 100, state: "" };
    assert.deepEqual(compareResult(expected, jobDone()), []);
    const m = compareResult(expected, jobDone({ result: ["failed", "No."], grade: 20, state: "s1" }));
    assert.deepEqual(m.map((x) => x.field), ["result", "text", "grade", "state"]);
    assert.deepEqual(m[0], { field: "result", expected: "success", actual: "failed" });
  });

  test("a field absent from the file, or empty in the result, is not compared; the grade compares as rounded for the backend", () => {
    assert.deepEqual(compareResult({ result: "success" }, jobDone({ grade: 3, stdout: "noise" })), []);
    assert.deepEqual(compareResult({ stdout: "x" }, jobDone({ stdout: null })), []);
    assert.deepEqual(compareResult({ grade: 33.33 }, jobDone({ grade: 100 / 3 })), []);
  });

  test("problems compare as pairs, only those the file names", () => {
    const done = jobDone({ problems: { q1: ["success", "ok"], q2: ["failed", "no"] } });
    assert.deepEqual(compareResult({ problems: { q1: ["success", "ok"] } }, done), []);
    const m = compareResult({ problems: { q1: ["success", "fine"], q3: ["success", ""] } }, done);
    assert.deepEqual(m.map((x) => x.field), ["problems.q1", "problems.q3"]);
    assert.equal(m[1]!.actual, null);
  });

  test("maps equal whatever their key order, numbers whatever their type, bytes by content", () => {
    assert.ok(deepEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2.0 }], a: 1 }));
    assert.ok(deepEqual(true, 1) && !deepEqual("1", 1) && !deepEqual([1], [1, 2]) && !deepEqual({ a: 1 }, { a: 1, b: 2 }));
    assert.ok(deepEqual(Buffer.from("hi"), new Uint8Array([104, 105])) && !deepEqual(Buffer.from("hi"), {}));
    assert.deepEqual(compareResult({ tests: { t: 1 }, custom: { k: [1, 2] } }, jobDone({ tests: { t: 1 }, custom: { k: [2, 1] } })).map((x) => x.field), ["custom"]);
  });

  test("a short diff names the first differing line of multi-line text", () => {
    const lines = shortDiff({ field: "text", expected: "a\nb\nc", actual: "a\nB\nc" });
    assert.deepEqual(lines, ["text: line 2 differs", '  - "b"', '  + "B"']);
    assert.deepEqual(shortDiff({ field: "grade", expected: 100, actual: 20 }), ["grade: expected 100, got 20"]);
    assert.deepEqual(shortDiff({ field: "problems.q", expected: ["failed", "2 of 3"], actual: ["failed", "2 of 3\nsee"] }),
      ["problems.q feedback: line 2 differs", "  - (no line)", '  + "see"']);
  });
});

describe("test files and course folders", () => {
  test("an inline input (uploads as !!binary), the recorded fields present and not null, the archive never", async () => {
    const file = await write("c1/t1/test/a.test", "input:\n  f: {filename: a.py, value: !!binary aGk=}\n  x: yes\nresult: success\nstdout: null\narchive: whatever\n");
    const t = await readTestFile(file);
    assert.equal(t.input.kind, "inline");
    const input = t.input.kind === "inline" ? t.input.inputdata : {};
    assert.equal(Buffer.from((input["f"] as { value: Uint8Array }).value).toString(), "hi");
    assert.equal(input["x"], true);
    assert.deepEqual(t.expected, { result: "success" });
  });

  test("an export holding a database id instead of the input; a file without input names the field", async () => {
    const t = await readTestFile(await write("c1/t1/test/b.test", "input: 65a1b2c3d4e5f60718293a4b\nresult: success\n"));
    assert.deepEqual(t.input, { kind: "database-id", id: "65a1b2c3d4e5f60718293a4b" });
    const file = await write("c1/t1/test/c.test", "result: success\n");
    await assert.rejects(readTestFile(file), (err: Error) => err.message === `${file}: input: missing: the submission's input is needed to replay it`);
  });

  test("the tasks of a course: folders with a task.yaml, their test/*.test sorted, .testignore noted", async () => {
    const course = path.join(root, "c2");
    await write("c2/t.1/task.yaml", "x: 1\n");
    await write("c2/t.1/test/b.test", "");
    await write("c2/t.1/test/a.test", "");
    await write("c2/t.1/test/notes.txt", "");
    await write("c2/t2/task.yaml", "x: 1\n");
    await write("c2/t2/.testignore", "");
    await write("c2/$common/task.yaml", "x: 1\n");
    await write("c2/no-task/readme", "");
    const tasks = await findTasks(course, []);
    assert.deepEqual(tasks.map((t) => [t.taskId, t.testFiles.map((f) => path.relative(course, f)), t.ignored]), [
      ["t.1", ["t.1/test/a.test", "t.1/test/b.test"], false],
      ["t2", [], true],
    ]);
    assert.deepEqual((await findTasks(course, ["t2"])).map((t) => t.taskId), ["t2"]);
    await assert.rejects(findTasks(course, ["no-task"]), CourseUsageError);
    await assert.rejects(findTasks(path.join(root, "nowhere"), []), CourseUsageError);
  });
});

/** Parses XML with Python's parser and returns the counts of each suite (the file is well-formed or this throws). */
function parseJunit(xml: string): Array<Record<string, string | number>> {
  const script = `
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
out = [dict(root.attrib, tag=root.tag)]
for s in root.findall("testsuite"):
    cases = s.findall("testcase")
    out.append(dict(s.attrib, tag=s.tag, cases=len(cases), failure=len(s.findall("testcase/failure")),
        error=len(s.findall("testcase/error")), skip=len(s.findall("testcase/skipped"))))
print(json.dumps(out))`;
  return JSON.parse(execFileSync("python3", ["-c", script], { input: xml }).toString()) as Array<Record<string, string | number>>;
}

describe("JUnit XML", () => {
  const c = (taskId: string, name: string, status: CaseReport["status"], extra: Partial<CaseReport> = {}): CaseReport => ({
    file: `course/${taskId}/test/${name}`, courseId: "course", taskId, status, mismatches: [], message: "", result: null, grade: null, seconds: 1.5, ...extra,
  });

  test("well-formed, one testcase per file, with the right counts per suite and in total, whatever the text", () => {
    const cases = [
      c("t1", "a.test", "pass"),
      c("t1", "b&<>.test", "fail", { mismatches: [{ field: "text", expected: "<b>\"quoted\" & 'x'\u0001", actual: "]]> \u{1F600}" }] }),
      c("t1", "c.test", "error", { message: "t1/task.yaml: problems: missing" }),
      c("t2", "d.test", "skipped", { message: "its input is a database id" }),
      c("t2", "e.test", "unrun", { message: "no grading image for environment docker/x" }),
    ];
    const [all, t1, t2] = parseJunit(junitXml("course", cases));
    assert.deepEqual([all!["tag"], all!["tests"], all!["failures"], all!["errors"], all!["skipped"], all!["time"]], ["testsuites", "5", "1", "2", "1", "7.500"]);
    assert.deepEqual([t1!["name"], t1!["tests"], t1!["cases"], t1!["failure"], t1!["error"], t1!["failures"], t1!["errors"]], ["course/t1", "3", 3, 1, 1, "1", "1"]);
    assert.deepEqual([t2!["name"], t2!["tests"], t2!["skip"], t2!["error"], t2!["skipped"], t2!["errors"]], ["course/t2", "2", 1, 1, "1", "1"]);
  });
});

describe("--record", () => {
  const done = jobDone({ result: ["failed", "Line 1\nLine 2\n"], grade: 20, problems: { q: ["failed", "no"] } });

  test("a file with only an input gets every field; its comments, input and other fields stay as they were", async () => {
    const head = "# kept\n_id: 5d9c\nsubmitted_on: 2019-10-08 14:21:07.512000\ninput:\n  f: !!binary |\n    aGk=\n  y: n\n";
    const file = await write("rec/a.test", head);
    assert.equal(await recordResult(file, { courseId: "c", taskId: "t" }, done), true);
    const text = await fs.readFile(file, "utf8");
    assert.ok(text.startsWith(head), text);
    const t = await readTestFile(file);
    assert.deepEqual(t.expected, { result: "failed", text: "Line 1\nLine 2\n", grade: 20, problems: { q: ["failed", "no"] }, tests: {}, custom: {}, state: "", stdout: "", stderr: "" });
    assert.deepEqual(compareResult(t.expected, done), []);
    assert.match(text, /^courseid: c$/m);
    assert.equal(await recordResult(file, { courseId: "c", taskId: "t" }, done), false, "recording the same result again changes nothing");
  });

  test("a file recording some fields keeps to them, rewrites only those that changed, and leaves a null alone", async () => {
    const before = "courseid: c\ntaskid: t\ninput: {code: x}\nresult: success  # was right once\n\n# the grade\ngrade: 20.0\nstdout: null\n";
    const file = await write("rec/b.test", before);
    assert.equal(await recordResult(file, { courseId: "c", taskId: "t" }, done), true);
    const after = await fs.readFile(file, "utf8");
    assert.equal(after, before.replace("result: success  # was right once\n", "result: failed\n"));
  });
});
