import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { copyTree, CopyTreeError } from "../src/jobs/copy-tree.js";
import { fillJobDirectory, jobPaths, prepareJobDirectory } from "../src/jobs/job-directory.js";

describe("copyTree and the job directory", () => {
  let root: string;
  let src: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), "iad-copy-"));
    src = path.join(root, "task");
    await fs.mkdir(path.join(src, "student", "deep"), { recursive: true });
    await fs.writeFile(path.join(src, "run"), "#!/bin/sh\necho hi\n");
    await fs.chmod(path.join(src, "run"), 0o750);
    await fs.writeFile(path.join(src, "student", "deep", "data.txt"), "data");
    await fs.chmod(path.join(src, "student"), 0o700);
    await fs.mkdir(path.join(root, "elsewhere"));
    await fs.writeFile(path.join(root, "elsewhere", "shared.txt"), "shared");
    await fs.symlink(path.join(root, "elsewhere", "shared.txt"), path.join(src, "linked.txt"));
    await fs.symlink("../elsewhere", path.join(src, "linked-dir"));
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  test("copies files and directories with their modes, and follows links as copytree does", async () => {
    const dst = path.join(root, "copy1");
    copyTree(src, dst);
    assert.equal(await fs.readFile(path.join(dst, "run"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.equal((await fs.stat(path.join(dst, "run"))).mode & 0o777, 0o750);
    assert.equal((await fs.stat(path.join(dst, "student"))).mode & 0o777, 0o700);
    assert.equal(await fs.readFile(path.join(dst, "student", "deep", "data.txt"), "utf8"), "data");
    const linked = await fs.lstat(path.join(dst, "linked.txt"));
    assert.ok(linked.isFile(), "a link to a file becomes the file");
    assert.equal(await fs.readFile(path.join(dst, "linked.txt"), "utf8"), "shared");
    assert.ok((await fs.lstat(path.join(dst, "linked-dir"))).isDirectory(), "a link to a directory becomes the directory");
    assert.equal(await fs.readFile(path.join(dst, "linked-dir", "shared.txt"), "utf8"), "shared");
  });

  test("merges into an existing directory, keeping its mode and overwriting files", async () => {
    const dst = path.join(root, "copy2");
    await fs.mkdir(dst);
    await fs.chmod(dst, 0o777);
    await fs.writeFile(path.join(dst, "run"), "old");
    await fs.writeFile(path.join(dst, "kept"), "kept");
    copyTree(src, dst);
    assert.equal((await fs.stat(dst)).mode & 0o777, 0o777);
    assert.equal(await fs.readFile(path.join(dst, "run"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.equal(await fs.readFile(path.join(dst, "kept"), "utf8"), "kept");
  });

  test("a dangling link and a link loop are errors naming the path", async () => {
    const bad = path.join(root, "bad");
    await fs.mkdir(bad);
    await fs.symlink(path.join(root, "nowhere"), path.join(bad, "dangling"));
    assert.throws(() => copyTree(bad, path.join(root, "copy3")), (err: unknown) =>
      err instanceof CopyTreeError && err.path === path.join(bad, "dangling") && /symbolic link to nothing/.test(err.message));
    const loop = path.join(root, "loop");
    await fs.mkdir(loop);
    await fs.symlink(".", path.join(loop, "self"));
    assert.throws(() => copyTree(loop, path.join(root, "copy4")), /levels deep/);
  });

  test("prepareJobDirectory leaves task/ and student/ writable by the container, and fill keeps them so", async () => {
    const job = path.join(root, "job-1");
    const p = prepareJobDirectory(job, "marker", src, null);
    for (const dir of [p.root, p.task, p.student, p.systemfiles, p.sockets]) assert.equal((await fs.stat(dir)).mode & 0o777, 0o777, dir);
    // the sockets bound into student containers are linked where no container reaches
    assert.equal((await fs.lstat(p.studentSockets)).isDirectory(), true);
    assert.equal(await fs.readFile(path.join(p.student, "deep", "data.txt"), "utf8"), "data");
    const warm = path.join(root, "job-2");
    const empty = prepareJobDirectory(warm, "marker", null, null);
    fillJobDirectory(jobPaths(warm), src, null);
    assert.equal((await fs.stat(empty.task)).mode & 0o777, 0o777);
    assert.equal((await fs.stat(empty.student)).mode & 0o777, 0o777);
    assert.equal((await fs.stat(empty.systemfiles)).mode & 0o777, 0o777);
    assert.equal(await fs.readFile(path.join(empty.task, "run"), "utf8"), "#!/bin/sh\necho hi\n");
  });
});
