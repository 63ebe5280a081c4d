/**
 * What a pool thread sets up once, when it loads, for every job it will run: its Docker client
 * (whose failed calls the main thread counts), its one comlink channel to the main thread, its
 * lower priority and its logger. Only pool threads import this module: it posts on parentPort.
 */
import os from "node:os";
import { MessageChannel, parentPort, workerData } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/esm/node-adapter.mjs";
import { createLogger, type Logger } from "../src/log.js";
import { connectDocker } from "../src/docker/engine.js";
import { instrumentDocker, relayDockerError } from "../src/ops/docker-errors.js";
import { answerMemoryQueries } from "../src/memory-report.js";
import { MAIN_API_PORT, poolSettingsOf, type MainApi, type PoolSettings } from "../src/jobs/job-task.js";

/** The agent's fixed settings, given once to this thread when the pool started it. */
export const settings: PoolSettings = poolSettingsOf(workerData);

export const docker = connectDocker();
// Engine errors of this thread are counted by the main thread's metrics.
instrumentDocker(docker, relayDockerError);

/** This thread's channel to the main thread, for every job it runs (see MAIN_API_PORT). */
export const mainApi: Comlink.Remote<MainApi> = (() => {
  const channel = new MessageChannel();
  parentPort!.postMessage({ [MAIN_API_PORT]: channel.port1 }, [channel.port1]);
  const api = Comlink.wrap<MainApi>(nodeEndpoint(channel.port2 as never));
  channel.port2.unref(); // piscina ends the thread; this channel must not hold it
  return api;
})();

/**
 * Pool threads run at a lower priority (nice 10) than the main thread, which must answer the
 * backend's pings within milliseconds whatever the load: on Linux a nice value is per thread,
 * and with all the CPUs busy decoding big results the main thread otherwise waited its turn
 * behind them (Pong p99 of hundreds of ms). Raising one's own nice value needs no privilege.
 */
const POOL_THREAD_NICE = 10;
try {
  if (os.getPriority(0) < POOL_THREAD_NICE) os.setPriority(0, POOL_THREAD_NICE);
} catch {
  /* not allowed here: run at the main thread's priority */
}

// the bench asks each thread where its memory is (only when INGINIOUS_AGENT_STATS is set)
answerMemoryQueries();

/** The thread's logger, at the main thread's level and destination. */
export const threadLog: Logger = createLogger({ verbose: false, level: settings.logLevel, destination: settings.logDestination });
