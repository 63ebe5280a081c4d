/**
 * The agent's folder on the layers' place (src/jobs/layer-place.ts, src/jobs/private-folder.ts),
 * on a real tree; no Docker. Made mode 0700 when missing; refused, and left as it is, when another
 * user made it first, when it is open to others or a link, or when a folder above it lets another
 * user swap it (theirs, even sticky, or writable by others and not sticky). A sticky folder of
 * root's above it, as /dev/shm, is fine.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, statSync, symlinkSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./helpers/agent-process.js";
import { agentLayersDir, makeAgentLayersDir } from "../src/jobs/layer-place.js";

const AGENT = "0123456789abcdef";
const NOBODY = 65534;
const me = process.getuid?.() ?? 0;

function withPlace(fn: (place: string) => void): void {
  const root = tempDir("layer-place");
  try {
    const place = path.join(root.path, "shm");
    mkdirSync(place);
    chmodSync(place, 0o1777); // as /dev/shm: root's (the test's user's), open to all, sticky
    fn(place);
  } finally {
    root.remove();
  }
}

test("a missing folder is made, the user's alone (0700), under a sticky place open to all", () => {
  withPlace((place) => {
    const own = makeAgentLayersDir(place, AGENT);
    assert.equal(own, agentLayersDir(place, AGENT));
    const st = lstatSync(own);
    assert.ok(st.isDirectory());
    assert.equal(st.uid, me);
    assert.equal(st.mode & 0o777, 0o700);
    assert.equal(makeAgentLayersDir(place, AGENT), own, "the agent's own folder is used again");
  });
});

test("a folder another user made first is refused and left as it is", { skip: me !== 0 && "chown needs root" }, () => {
  withPlace((place) => {
    const own = agentLayersDir(place, AGENT);
    mkdirSync(own, { mode: 0o700 });
    chownSync(own, NOBODY, NOBODY);
    assert.throws(() => makeAgentLayersDir(place, AGENT), /belongs to uid 65534, not to this agent's user.*another user made it/);
    assert.equal(statSync(own).uid, NOBODY, "left as it is");
  });
});

test("a folder of the agent's user open to others (world-writable, or readable by its group) is refused", () => {
  withPlace((place) => {
    const own = agentLayersDir(place, AGENT);
    mkdirSync(own);
    for (const mode of [0o777, 0o750]) {
      chmodSync(own, mode);
      assert.throws(() => makeAgentLayersDir(place, AGENT), new RegExp(`is open to others \\(mode 0${mode.toString(8)}, not 0700\\)`));
      assert.equal(statSync(own).mode & 0o777, mode, "left as it is");
    }
  });
});

test("a link in the folder's stead is refused, not followed", () => {
  withPlace((place) => {
    const elsewhere = path.join(path.dirname(place), "elsewhere");
    mkdirSync(elsewhere, { mode: 0o700 });
    symlinkSync(elsewhere, agentLayersDir(place, AGENT));
    assert.throws(() => makeAgentLayersDir(place, AGENT), /is a symbolic link/);
    assert.deepEqual(readdirSync(elsewhere), []);
  });
});

test("a place another user owns, even sticky (made first, as the shared folder was), is refused", { skip: me !== 0 && "chown needs root" }, () => {
  withPlace((shm) => {
    const theirs = path.join(shm, "theirs");
    mkdirSync(theirs);
    chmodSync(theirs, 0o1777);
    chownSync(theirs, NOBODY, NOBODY);
    assert.throws(() => makeAgentLayersDir(theirs, AGENT), /theirs belongs to uid 65534, neither this agent's user .* nor root.*could swap/);
    assert.deepEqual(readdirSync(theirs), [], "nothing made there");
  });
});

test("a place writable by others and not sticky, or below such a folder, is refused", () => {
  withPlace((shm) => {
    const open = path.join(shm, "open");
    mkdirSync(path.join(open, "below"), { recursive: true });
    chmodSync(open, 0o777);
    for (const place of [open, path.join(open, "below")]) {
      assert.throws(() => makeAgentLayersDir(place, AGENT), /open is writable by others \(mode 0777\) and not sticky/);
    }
    assert.deepEqual(readdirSync(path.join(open, "below")), []);
  });
});

test("a place given through a link is used by its real path (the path the engine is given)", () => {
  withPlace((shm) => {
    const link = path.join(path.dirname(shm), "shm-link");
    symlinkSync(shm, link);
    assert.equal(makeAgentLayersDir(link, AGENT), agentLayersDir(shm, AGENT));
  });
});
