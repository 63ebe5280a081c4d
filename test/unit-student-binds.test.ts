/** What a student container may bind, proven on a real job directory (no Docker): links, wrong types, and the socket's pin. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, renameSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { prepareJobDirectory, type JobPaths } from "../src/jobs/job-directory.js";
import { ensureScripts, pinSocket, proveStudentDirectories, StudentBindRefused, unpinSocket } from "../workers/student-binds.js";
import { REPO, tempDir } from "./helpers/agent-process.js";

function listen(file: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((c) => c.destroy());
    srv.on("error", reject);
    srv.listen(file, () => resolve(srv));
  });
}

describe("student container binds", () => {
  const tmp = tempDir("binds");
  const outside = path.join(tmp.path, "outside");
  const servers: net.Server[] = [];
  let n = 0;
  const job = (): JobPaths => prepareJobDirectory(path.join(tmp.path, `job-${++n}`), "marker", null, null);
  before(async () => {
    mkdirSync(outside, { mode: 0o755 });
    writeFileSync(path.join(outside, "secret"), "host");
    servers.push(await listen(path.join(outside, "host.sock")));
  });
  after(() => {
    for (const s of servers) s.close();
    tmp.remove();
  });
  const outsideUnchanged = (): void => {
    assert.deepEqual(readdirSync(outside).sort(), ["host.sock", "secret"]);
    assert.equal(statSync(outside).mode & 0o777, 0o755);
  };

  test("a fresh job directory passes; task/student or task/systemfiles made a link does not", () => {
    const p = job();
    proveStudentDirectories(p);
    const q = job();
    mkdirSync(path.join(q.root, "moved"));
    renameSync(q.student, path.join(q.root, "moved", "student"));
    symlinkSync(outside, q.student);
    assert.throws(() => proveStudentDirectories(q), (e: Error) => e instanceof StudentBindRefused && /task\/student is a symbolic link/.test(e.message));
    const r = job();
    renameSync(r.systemfiles, path.join(r.root, "systemfiles.old"));
    symlinkSync(outside, r.systemfiles);
    assert.throws(() => proveStudentDirectories(r), /systemfiles is a symbolic link/);
    const s = job();
    renameSync(s.task, path.join(s.root, "task.old"));
    symlinkSync(path.join(s.root, "task.old"), s.task);
    assert.throws(() => proveStudentDirectories(s), /task is a symbolic link/);
    outsideUnchanged();
  });

  test("scripts/ is made open to all when missing, and a link there is left alone", () => {
    const p = job();
    ensureScripts(p);
    assert.equal(statSync(p.studentScripts).mode & 0o777, 0o777);
    const q = job();
    symlinkSync(outside, q.studentScripts);
    ensureScripts(q);
    assert.equal(lstatSync(q.studentScripts).isSymbolicLink(), true);
    outsideUnchanged();
  });

  test("the grader's socket is pinned by a hard link, bound from a folder of the job", async () => {
    const p = job();
    const sock = path.join(p.sockets, "a.sock");
    servers.push(await listen(sock));
    const pinned = pinSocket(p, "a");
    assert.equal(path.dirname(pinned), p.studentSockets);
    assert.equal(lstatSync(pinned).isSocket(), true);
    assert.equal(lstatSync(pinned).ino, lstatSync(sock).ino);
    unpinSocket(pinned);
    assert.deepEqual(readdirSync(p.studentSockets), []);
    assert.equal(lstatSync(sock).isSocket(), true, "the grader's own name stays");
  });

  test("a socket path that is a link to a host socket, a file or a directory is refused and nothing is left", () => {
    const p = job();
    symlinkSync(path.join(outside, "host.sock"), path.join(p.sockets, "link.sock"));
    assert.throws(() => pinSocket(p, "link"), /link\.sock is a symbolic link/);
    symlinkSync(path.join(outside, "secret"), path.join(p.sockets, "file-link.sock"));
    assert.throws(() => pinSocket(p, "file-link"), /is a symbolic link/);
    writeFileSync(path.join(p.sockets, "file.sock"), "x");
    assert.throws(() => pinSocket(p, "file"), /file\.sock is not a socket/);
    mkdirSync(path.join(p.sockets, "dir.sock"));
    assert.throws(() => pinSocket(p, "dir"), StudentBindRefused);
    assert.throws(() => pinSocket(p, "missing"), /ENOENT/);
    assert.deepEqual(readdirSync(p.studentSockets), []);
    assert.deepEqual(readdirSync(p.sockets).sort(), ["dir.sock", "file-link.sock", "file.sock", "link.sock"]);
    outsideUnchanged();
  });

  test("an agent that may not link another user's socket moves it instead (protected hard links)", async (t) => {
    const script = path.join(REPO, "dist/workers/student-binds.js");
    const probe = spawnSync("setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", "--", process.execPath, "-e",
      `require("fs").accessSync(${JSON.stringify(script)})`]);
    if (probe.status !== 0) {
      t.skip(`uid 1000 cannot read ${script} (the checkout is in a private directory)`);
      return;
    }
    const p = job();
    chmodSync(tmp.path, 0o755);
    chownSync(p.studentSockets, 1000, 1000);
    const sock = path.join(p.sockets, "other.sock");
    servers.push(await listen(sock));
    chownSync(sock, 4242, 4242);
    const code = `import(${JSON.stringify(script)}).then((m) => process.stdout.write(m.pinSocket(${JSON.stringify(p)}, "other")))`;
    const r = spawnSync("setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", "--", process.execPath, "-e", code], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, path.join(p.studentSockets, "other.sock"));
    assert.equal(lstatSync(r.stdout).isSocket(), true);
    assert.deepEqual(readdirSync(p.sockets), []);
  });
});
