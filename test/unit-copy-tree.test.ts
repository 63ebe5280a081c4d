import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { copyTree, CopyTreeError } from "../src/jobs/copy-tree.js";
import { fillJobDirectory, jobPaths, prepareFailureText, prepareJobDirectory, TaskFolderError } from "../src/jobs/job-directory.js";

describe("copyTree and the job directory", () => {
  let root: string;
  let course: string;
  let src: string;
  let elsewhere: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), "iad-copy-"));
    course = path.join(root, "course");
    src = path.join(course, "task");
    elsewhere = path.join(root, "elsewhere");
    await fs.mkdir(path.join(src, "student", "deep"), { recursive: true });
    await fs.writeFile(path.join(src, "run"), "#!/bin/sh\necho hi\n");
    await fs.chmod(path.join(src, "run"), 0o750);
    await fs.writeFile(path.join(src, "student", "deep", "data.txt"), "data");
    await fs.chmod(path.join(src, "student"), 0o700);
    await fs.mkdir(path.join(course, "shared"));
    await fs.writeFile(path.join(course, "shared", "s.txt"), "shared");
    await fs.symlink("../task", path.join(course, "shared", "back"));
    await fs.mkdir(elsewhere);
    await fs.writeFile(path.join(elsewhere, "secret.txt"), "host secret");
    const links: Array<[string, string]> = [
      ["rel", "run"],
      ["abs-dangling", "/course/common/lib.sh"],
      ["host-file", "/etc/hostname"],
      ["host-dir", elsewhere],
      ["host-secret", path.join(elsewhere, "secret.txt")],
      ["inside-dir", "../shared"],
      ["inside-file", "../shared/s.txt"],
      ["up", ".."],
      ["self", "."],
    ];
    for (const [name, target] of links) await fs.symlink(target, path.join(src, name));
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  const linkText = async (p: string): Promise<string | null> =>
    (await fs.lstat(p)).isSymbolicLink() ? fs.readlink(p) : null;

  test("copies files and directories with their modes, and every link as a link with its own text", async () => {
    const dst = path.join(root, "copy1");
    copyTree(src, dst, course);
    assert.equal(await fs.readFile(path.join(dst, "run"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.equal((await fs.stat(path.join(dst, "run"))).mode & 0o777, 0o750);
    assert.equal((await fs.stat(path.join(dst, "student"))).mode & 0o777, 0o700);
    assert.equal(await fs.readFile(path.join(dst, "student", "deep", "data.txt"), "utf8"), "data");
    assert.equal(await linkText(path.join(dst, "rel")), "run");
    assert.equal(await linkText(path.join(dst, "abs-dangling")), "/course/common/lib.sh", "a dangling link is copied, not an error");
    assert.equal(await linkText(path.join(dst, "host-file")), "/etc/hostname", "a link to a host file stays a link");
    assert.equal(await linkText(path.join(dst, "host-secret")), path.join(elsewhere, "secret.txt"));
    assert.equal(await linkText(path.join(dst, "host-dir")), elsewhere, "a link to a directory outside the course stays a link");
    assert.equal(await linkText(path.join(dst, "inside-file")), "../shared/s.txt", "a link to a file inside the course stays a link");
    assert.equal(await linkText(path.join(dst, "up")), "..", "a link to an ancestor stays a link");
    assert.equal(await linkText(path.join(dst, "self")), ".");
  });

  test("a link to a directory inside the course is copied as that directory, links in it by the same rules", async () => {
    const dst = path.join(root, "copy-inside");
    copyTree(src, dst, course);
    const inside = path.join(dst, "inside-dir");
    assert.ok((await fs.lstat(inside)).isDirectory());
    assert.equal(await fs.readFile(path.join(inside, "s.txt"), "utf8"), "shared");
    assert.equal(await linkText(path.join(inside, "back")), "../task", "a link back to the folder being copied would loop: it stays a link");
  });

  test("no byte from outside the course folder is copied", async () => {
    const dst = path.join(root, "copy-nohost");
    copyTree(src, dst, course);
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await fs.readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(path.join(d, e.name));
        else if (e.isFile()) files.push(await fs.readFile(path.join(d, e.name), "utf8"));
      }
    };
    await walk(dst);
    assert.ok(!files.includes("host secret"), "the host file's content was copied");
  });

  test("merges into an existing directory, keeping its mode, overwriting files and never writing through a link", async () => {
    const dst = path.join(root, "copy2");
    const victim = path.join(root, "victim.txt");
    await fs.writeFile(victim, "untouched");
    await fs.mkdir(dst);
    await fs.chmod(dst, 0o777);
    await fs.writeFile(path.join(dst, "kept"), "kept");
    await fs.symlink(victim, path.join(dst, "run"));
    await fs.symlink(elsewhere, path.join(dst, "student"));
    copyTree(src, dst, course);
    assert.equal((await fs.stat(dst)).mode & 0o777, 0o777);
    assert.equal(await fs.readFile(path.join(dst, "run"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.ok((await fs.lstat(path.join(dst, "run"))).isFile());
    assert.equal(await fs.readFile(victim, "utf8"), "untouched");
    assert.ok((await fs.lstat(path.join(dst, "student"))).isDirectory());
    assert.deepEqual(await fs.readdir(elsewhere), ["secret.txt"], "nothing written into the directory a link led to");
    assert.equal(await fs.readFile(path.join(dst, "kept"), "utf8"), "kept");
  });

  test("a folder that is a link out of the course is refused; one that is a link within it is copied", async () => {
    await fs.symlink(elsewhere, path.join(course, "out-task"));
    assert.throws(() => copyTree(path.join(course, "out-task"), path.join(root, "copy3"), course), (err: unknown) =>
      err instanceof CopyTreeError && /outside the course folder/.test(err.message));
    await fs.symlink("task", path.join(course, "alias-task"));
    copyTree(path.join(course, "alias-task"), path.join(root, "copy3b"), course);
    assert.equal(await fs.readFile(path.join(root, "copy3b", "run"), "utf8"), "#!/bin/sh\necho hi\n");
  });

  test("links between directories that nest too deep are an error naming the path", async () => {
    const deep = path.join(course, "deep");
    await fs.mkdir(deep);
    for (let i = 0; i < 40; i++) {
      await fs.mkdir(path.join(deep, `d${i}`));
      await fs.symlink(`../d${i + 1}`, path.join(deep, `d${i}`, "next"));
    }
    await fs.mkdir(path.join(deep, "d40"));
    await fs.mkdir(path.join(deep, "t"));
    await fs.symlink("../d0", path.join(deep, "t", "start"));
    assert.throws(() => copyTree(path.join(deep, "t"), path.join(root, "copy4"), course), (err: unknown) =>
      err instanceof CopyTreeError && /^start\/next\/(next\/)+next: more than 32 levels deep/.test(err.message));
  });

  test("prepareJobDirectory leaves task/ and student/ writable by the container, and fill keeps them so", async () => {
    const job = path.join(root, "job-1");
    const p = prepareJobDirectory(job, "marker", src, course);
    for (const dir of [p.root, p.task, p.student, p.systemfiles, p.sockets]) assert.equal((await fs.stat(dir)).mode & 0o777, 0o777, dir);
    // the sockets bound into student containers are linked where no container reaches
    assert.equal((await fs.lstat(p.studentSockets)).isDirectory(), true);
    assert.equal(await fs.readFile(path.join(p.student, "deep", "data.txt"), "utf8"), "data");
    const warm = path.join(root, "job-2");
    const empty = prepareJobDirectory(warm, "marker", null, null);
    fillJobDirectory(jobPaths(warm), src, course);
    assert.equal((await fs.stat(empty.task)).mode & 0o777, 0o777);
    assert.equal((await fs.stat(empty.student)).mode & 0o777, 0o777);
    assert.equal((await fs.stat(empty.systemfiles)).mode & 0o777, 0o777);
    assert.equal(await fs.readFile(path.join(empty.task, "run"), "utf8"), "#!/bin/sh\necho hi\n");
  });

  test("$common is copied by the same rules", async () => {
    const c = path.join(root, "course-common");
    await fs.mkdir(path.join(c, "$common", "student"), { recursive: true });
    await fs.mkdir(path.join(c, "t"));
    await fs.mkdir(path.join(c, "lib"));
    await fs.writeFile(path.join(c, "lib", "lib.sh"), "echo lib");
    await fs.symlink("/course/common/lib.sh", path.join(c, "$common", "abs"));
    await fs.symlink("/etc", path.join(c, "$common", "etc"));
    await fs.symlink("../lib", path.join(c, "$common", "lib"));
    const p = prepareJobDirectory(path.join(root, "job-common"), "marker", path.join(c, "t"), c);
    assert.equal(await linkText(path.join(p.courseCommon, "abs")), "/course/common/lib.sh");
    assert.equal(await linkText(path.join(p.courseCommon, "etc")), "/etc");
    assert.equal(await fs.readFile(path.join(p.courseCommon, "lib", "lib.sh"), "utf8"), "echo lib");
  });

  describe("folders the agent opens itself may not be links", () => {
    const cases: Array<[string, string, string]> = [
      ["task student", "t/student", "task/student"],
      ["task student/scripts", "t/student/scripts", "task/student/scripts"],
      ["task systemfiles", "t/systemfiles", "task/systemfiles"],
      ["$common student", "$common/student", "$common/student"],
    ];
    for (const [name, linkAt, shown] of cases) {
      test(name, async () => {
        const c = await fs.mkdtemp(path.join(root, "course-"));
        await fs.mkdir(path.join(c, "t"));
        if (linkAt !== "t/student") await fs.mkdir(path.join(c, "t", "student"));
        await fs.mkdir(path.join(c, "$common"));
        await fs.mkdir(path.join(c, "inside"));
        // even a link to a folder inside the course: the rule is about what the agent opens, kept simple
        await fs.symlink(path.join(c, "inside"), path.join(c, linkAt));
        const job = path.join(c, "job");
        let caught: unknown = null;
        try {
          prepareJobDirectory(job, "marker", path.join(c, "t"), c);
        } catch (err) {
          caught = err;
        }
        assert.ok(caught instanceof TaskFolderError, String(caught));
        assert.equal(caught.message.startsWith(`${shown} is a symbolic link`), true, caught.message);
        assert.match(prepareFailureText(caught), /^The task folder cannot be used: .* make it a plain folder\. Please contact your course administrator\.$/);
        assert.doesNotMatch(prepareFailureText(caught), new RegExp(root), "no host path in a text students may read");
      });
    }
  });
});
