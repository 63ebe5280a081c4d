/**
 * The bench's backend socket, in its own worker thread: a ZeroMQ ROUTER that only receives,
 * sends and timestamps. It pings the agent every 100 ms and times each Pong the moment it
 * arrives; job results, even 40 MB ones, are only skimmed (msgpack skeleton, no payload
 * decoding or copying), so nothing that arrives can delay the timing of what follows.
 * The main thread (wire-client.ts) decides what to send and gets small event objects back.
 */
import { parentPort, workerData } from "node:worker_threads";
import { gunzipSync } from "node:zlib";
import { Router } from "zeromq";
import { decodeAgentFrame, encodeBackendMessage, type BackendMessage } from "../src/protocol/messages.js";
import { decodeArchive } from "../src/protocol/archive.js";
import { isBig, peek } from "./peek.js";
import { now } from "./stats.js";

export type WireCommand =
  | { cmd: "job"; id: string; msg: BackendMessage }
  | { cmd: "pings"; on: boolean }
  | { cmd: "verifyKept" }
  | { cmd: "close" };

export interface DoneEvent {
  ev: "done";
  id: string;
  at: number;
  size: number;
  result: string;
  text: string;
  archiveBytes: number;
  archiveIsGzip: boolean;
  stdoutBytes: number;
}

export type WireEvent =
  | { ev: "ready"; address: string }
  | { ev: "hello"; at: number; slots: number; environments: Record<string, string[]> }
  | { ev: "sent"; id: string; at: number }
  | { ev: "started"; id: string; at: number }
  | DoneEvent
  | { ev: "pong"; sentAt: number; rtt: number; behindBig: boolean }
  | { ev: "other"; type: string; at: number }
  | { ev: "verified"; ok: boolean; detail: string }
  | { ev: "error"; message: string };

const port = parentPort!;
const post = (e: WireEvent): void => port.postMessage(e);
const pingEveryMs = (workerData as { pingEveryMs?: number } | null)?.pingEveryMs ?? 100;

const socket = new Router({ ipv6: true, linger: 0, sendHighWaterMark: 100000, receiveHighWaterMark: 100000 });
await socket.bind("tcp://127.0.0.1:*");

let identity: Buffer | null = null;
let closed = false;
/** zeromq allows one pending send per socket: sends are chained. */
let sending: Promise<void> = Promise.resolve();
function send(frame: Buffer): void {
  const id = identity;
  if (id === null || closed) return;
  sending = sending.then(() => socket.send([id, frame])).catch((err: Error) => {
    if (!closed) post({ ev: "error", message: `send failed: ${err.message}` });
  });
}

const pingFrame = encodeBackendMessage({ type: "Ping" });
const pingsInFlight: number[] = [];
let pingsOn = true;
const pingTimer = setInterval(() => {
  if (!pingsOn || identity === null) return;
  pingsInFlight.push(now());
  send(pingFrame);
}, pingEveryMs);

/** The first big AgentJobDone, kept undecoded for a full check once the timed phase is over. */
let kept: Buffer | null = null;
/** Arrival of the last frame over 1 MiB: a Pong that arrives after it may have queued behind it. */
let lastBigAt = 0;
const BIG_FRAME = 1024 * 1024;

function onFrame(frame: Buffer, from: Buffer, at: number): void {
  if (frame.length > BIG_FRAME) lastBigAt = at;
  // Pong is 12 bytes; anything this small is decoded at once
  if (frame.length < 64) {
    let type = "<undecodable>";
    try {
      type = decodeAgentFrame(frame)["@type"];
    } catch {
      /* reported below */
    }
    if (type === "Pong") {
      const sentAt = pingsInFlight.shift();
      if (sentAt !== undefined) post({ ev: "pong", sentAt, rtt: at - sentAt, behindBig: lastBigAt >= sentAt });
      return;
    }
    if (type !== "AgentJobStarted") {
      post({ ev: "other", type, at });
      return;
    }
  }
  let m: Record<string, unknown>;
  try {
    m = peek(frame) as Record<string, unknown>;
  } catch (err) {
    post({ ev: "error", message: `undecodable frame of ${frame.length} bytes: ${(err as Error).message}` });
    return;
  }
  const type = String(m["@type"]);
  switch (type) {
    case "AgentHello": {
      identity = from;
      pingsInFlight.length = 0;
      const envs = (m["available_environments"] ?? {}) as Record<string, Record<string, unknown>>;
      const environments: Record<string, string[]> = {};
      for (const [t, byName] of Object.entries(envs)) environments[t] = Object.keys(byName);
      post({ ev: "hello", at, slots: Number(m["available_job_slots"]), environments });
      return;
    }
    case "AgentJobStarted":
      post({ ev: "started", id: String(m["job_id"]), at });
      return;
    case "AgentJobDone": {
      const result = (m["result"] ?? []) as unknown[];
      const archive = m["archive"];
      const stdout = m["stdout"];
      let archiveBytes = 0;
      let archiveIsGzip = false;
      if (isBig(archive)) {
        archiveBytes = archive.length;
        archiveIsGzip = frame[archive.offset] === 0x1f && frame[archive.offset + 1] === 0x8b;
      } else if (archive instanceof Uint8Array) {
        archiveBytes = archive.length;
        archiveIsGzip = archive[0] === 0x1f && archive[1] === 0x8b;
      }
      const stdoutBytes = isBig(stdout) ? stdout.length : typeof stdout === "string" ? Buffer.byteLength(stdout) : 0;
      if (frame.length > BIG_FRAME && kept === null) kept = frame;
      post({
        ev: "done", id: String(m["job_id"]), at, size: frame.length,
        result: typeof result[0] === "string" ? result[0] : "?",
        text: typeof result[1] === "string" ? result[1].slice(0, 300) : "",
        archiveBytes, archiveIsGzip, stdoutBytes,
      });
      return;
    }
    default:
      post({ ev: "other", type, at });
  }
}

/** Full decode of the kept big result: the archive must be a real .tgz, stdout the expected text. */
function verifyKept(): void {
  if (kept === null) return post({ ev: "verified", ok: false, detail: "no big result was received" });
  try {
    const m = decodeAgentFrame(kept);
    kept = null;
    const archive = m["archive"];
    const stdout = m["stdout"];
    if (!(archive instanceof Uint8Array)) throw new Error("archive is not bytes");
    if (typeof stdout !== "string") throw new Error("stdout is not text");
    decodeArchive(Buffer.from(archive).toString("base64"), 256 * 1024 * 1024);
    const tar = gunzipSync(archive);
    post({
      ev: "verified", ok: true,
      detail: `archive ${archive.length} B (.tgz, tar ${tar.length} B), stdout ${stdout.length} chars, result ${JSON.stringify(m["result"])}`,
    });
  } catch (err) {
    post({ ev: "verified", ok: false, detail: (err as Error).message });
  }
}

port.on("message", (c: WireCommand) => {
  switch (c.cmd) {
    case "job":
      post({ ev: "sent", id: c.id, at: now() });
      send(encodeBackendMessage(c.msg));
      return;
    case "pings":
      pingsOn = c.on;
      if (!c.on) pingsInFlight.length = 0;
      return;
    case "verifyKept":
      verifyKept();
      return;
    case "close":
      closed = true;
      clearInterval(pingTimer);
      void sending.finally(() => {
        socket.close();
        port.close();
      });
      return;
  }
});

post({ ev: "ready", address: socket.lastEndpoint! });

try {
  for await (const [from, frame] of socket) {
    const at = now();
    if (!from || !frame) continue;
    onFrame(frame, from, at);
  }
} catch (err) {
  if (!closed) post({ ev: "error", message: `receive loop ended: ${(err as Error).message}` });
}
