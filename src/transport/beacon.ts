/**
 * A liveness beacon on its own thread: a second DEALER (routing id NAME + BEACON_SUFFIX) that keeps
 * sending the latest heartbeat while the worker's main thread is busy computing a unit. A killed or
 * stopped process goes silent at once, so the coordinator notices within --worker-timeout even
 * when one unit takes longer than that; a live but hung main thread is caught by unit deadlines.
 */
import { Worker as Thread } from 'worker_threads';

export const BEACON_SUFFIX = '#beacon';

export interface Beacon {
  /** The heartbeat message to repeat (undefined: stay quiet). */
  set(frames: Buffer[] | undefined): void;
  stop(): Promise<void>;
}

export interface BeaconOptions {
  address: string;
  routingId: string;
  intervalMs: number;
  /** CURVE socket options (curveServerKey, curveSecretKey, curvePublicKey), as Z85 strings. */
  curve?: Record<string, string>;
}

// Runs in the thread: plain JavaScript, no project imports, zeromq loaded from the resolved path.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('worker_threads');
const zmq = require(workerData.zeromq);
const socket = new zmq.Dealer({ routingId: workerData.routingId, linger: 0, immediate: true, sendTimeout: 0,
  reconnectInterval: 1000, reconnectMaxInterval: 32000, ...(workerData.curve || {}) });
socket.connect(workerData.address);
let frames;
const timer = setInterval(() => { if (frames) socket.send(frames).catch(() => {}); }, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') { clearInterval(timer); socket.close(); parentPort.close(); return; }
  frames = m === null ? undefined : m.map((f) => Buffer.from(f));
});
`;

export function startBeacon(opts: BeaconOptions): Beacon {
  const thread = new Thread(THREAD_SOURCE, {
    eval: true,
    workerData: { zeromq: require.resolve('zeromq'), address: opts.address, routingId: `${opts.routingId}${BEACON_SUFFIX}`, intervalMs: opts.intervalMs, curve: opts.curve },
  });
  // The beacon must never keep a finished worker process alive.
  thread.unref();
  let stopped: Promise<void> | undefined;
  return {
    set(frames) {
      if (!stopped) thread.postMessage(frames === undefined ? null : frames.map((f) => new Uint8Array(f)));
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        // Referenced while waited for: an unreferenced thread lets the process exit mid-stop.
        thread.ref();
        thread.once('exit', () => resolve());
        thread.postMessage('stop');
        setTimeout(() => { void thread.terminate().then(() => resolve()); }, 1000).unref();
      });
      return stopped;
    },
  };
}
