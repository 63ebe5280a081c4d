/**
 * dockerode loads, as soon as it is imported, two parts the agent needs only in rare setups:
 * ssh2 (docker-modem's lib/ssh.js, for an ssh:// DOCKER_HOST) and gRPC with protobuf
 * (dockerode's lib/session.js, for BuildKit sessions of image builds, which the agent never
 * makes). Together they cost about 20 MB of RSS in every thread that imports dockerode: the
 * main thread and each pool thread. Imported before dockerode, this module puts a stand-in for
 * each of those two files in require's cache: a function that loads the real module the first
 * time it is called (both files export a single function). A file that is not where this
 * version of dockerode keeps it, or that no longer loads the heavy part, is left alone.
 */
import { existsSync, readFileSync } from "node:fs";
import { Module, createRequire } from "node:module";
import path from "node:path";

type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;

const require = createRequire(import.meta.url);

/** The files replaced by a stand-in (absolute paths), for tests and logs. */
export const deferredParts: string[] = [];

function deferParts(): void {
  let dockerode: string;
  let modem: string;
  try {
    dockerode = require.resolve("dockerode");
    modem = createRequire(dockerode).resolve("docker-modem");
  } catch {
    return; // dockerode is not installed here: its import will say so
  }
  defer(path.join(path.dirname(dockerode), "session.js"), "@grpc/grpc-js");
  defer(path.join(path.dirname(modem), "ssh.js"), "ssh2");
}

/** Caches a stand-in for `file` when it exists and requires `heavy`. */
function defer(file: string, heavy: string): void {
  if (require.cache[file] !== undefined || !existsSync(file)) return;
  let source: string;
  try {
    source = readFileSync(file, "utf8");
  } catch {
    return;
  }
  if (!source.includes(`require('${heavy}')`) && !source.includes(`require("${heavy}")`)) return;
  let real: AnyFunction | null = null;
  const standIn = function (this: unknown, ...args: unknown[]): unknown {
    if (real === null) {
      delete require.cache[file];
      const loaded: unknown = require(file);
      if (typeof loaded !== "function") throw new Error(`${file} no longer exports a function: the agent's stand-in for it cannot call it`);
      real = loaded as AnyFunction;
    }
    return real.apply(this, args);
  };
  const stub = new Module(file);
  stub.filename = file;
  stub.loaded = true;
  stub.exports = standIn;
  require.cache[file] = stub;
  deferredParts.push(file);
}

deferParts();
