/** The command line: every seed option is listed, and each bad value exits 2 with one line naming the option. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { runCli, TASKS, tempDir } from "./helpers/agent-process.js";

test("--help lists every option of the seed page", async () => {
  const { code, stdout } = await runCli(["--help"]);
  assert.equal(code, 0);
  for (const option of [
    "--friendly-name", "--debug-host", "--debug-ports", "--tmpdir", "--tasks", "--fs ", "--fs-help",
    "--concurrency", "-v, --verbose", "--debugmode", "--disable-autorestart", "--ssh", "--runtime", "<backend>",
  ]) {
    assert.ok(stdout.includes(option), `--help should list ${option}:\n${stdout}`);
  }
});

test("--fs-help describes the local provider and exits 0", async () => {
  const { code, stdout } = await runCli(["--fs-help"]);
  assert.equal(code, 0);
  assert.match(stdout, /local/);
  assert.match(stdout, /--fs-location/);
});

const bad: Array<[string, string[], RegExp]> = [
  ["zero concurrency", ["--concurrency", "0", "tcp://127.0.0.1:2001"], /--concurrency.*positive integer/],
  ["a port range with junk", ["--debug-ports", "10-x", "tcp://127.0.0.1:2001"], /--debug-ports.*begin-end/],
  ["a backend with no scheme", ["127.0.0.1:2001"], /backend.*protocol:\/\/host:port/],
  ["an unknown runtime flag", ["--runtime", "runc", "docker", "fast", "--ssh", "tcp://127.0.0.1:2001"], /--runtime.*unknown runtime flag "fast"/],
  ["a runtime with no envtype", ["--runtime", "runc", "--ssh", "tcp://127.0.0.1:2001"], /--runtime.*RUNTIME ENVTYPE/],
  ["--tasks with --fs", ["--tasks", "t", "--fs", "local", "tcp://127.0.0.1:2001"], /cannot be used with/],
  ["no backend at all", [], /missing required argument 'backend'/],
  ["an unknown option", ["--frobnicate", "tcp://127.0.0.1:2001"], /unknown option '--frobnicate'/],
  ["grade with .. for a course", ["grade", "--tasks", "/", "../etc"], /not a valid COURSE\/TASK/],
];

for (const [name, args, message] of bad) {
  test(`${name} exits with status 2 and says why`, async () => {
    const { code, stderr } = await runCli(args);
    assert.equal(code, 2, `exit status for ${args.join(" ")}; stderr: ${stderr}`);
    assert.match(stderr, message);
    assert.equal(stderr.trim().split("\n").length, 1, `one line expected, got:\n${stderr}`);
  });
}

test("--disable-disk-limit and INGINIOUS_AGENT_DISABLE_DISK_LIMIT turn disk limits off, with a warning; on by default", async () => {
  const tmp = tempDir("cli-disk");
  try {
    // a --tmpdir that is a file stops the agent at its self-checks, after the configuration is read
    const file = path.join(tmp.path, "not-a-dir");
    writeFileSync(file, "");
    const base = ["tcp://127.0.0.1:9", "--tmpdir", file, "--tasks", TASKS];
    const cases: Array<[string, string[], NodeJS.ProcessEnv, boolean]> = [
      ["default", [], {}, false],
      ["the flag", ["--disable-disk-limit"], {}, true],
      ["the variable", [], { INGINIOUS_AGENT_DISABLE_DISK_LIMIT: "1" }, true],
      ["the variable set to no", [], { INGINIOUS_AGENT_DISABLE_DISK_LIMIT: "no" }, false],
    ];
    for (const [name, args, env, off] of cases) {
      const { code, stdout } = await runCli([...base, ...args], 60_000, env);
      assert.equal(code, 1, `${name}: ${stdout}`);
      const warned = stdout.split("\n").some((l) => l.includes('"check":"disk-limit"') && l.includes("disk limits off (--disable-disk-limit)"));
      assert.equal(warned, off, `${name}: ${stdout}`);
    }
  } finally {
    tmp.remove();
  }
});
