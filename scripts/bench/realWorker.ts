/**
 * A benchmark child that is the product's worker role (src/worker/worker.ts over ZmqClient with
 * its beacon thread, as `ddpm worker` builds it) computing real gradients on a tfjs backend, and
 * reporting its memory over IPC every --sample-ms: process.memoryUsage() after a full GC, and
 * tf.memory() (tensor count and bytes).
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendName, initBackend } from '../../src/backend/backend';
import { ZmqClient } from '../../src/transport/zmq';
import { Worker } from '../../src/worker/worker';

type Command = { cmd: 'real-worker'; endpoint: string; name: string; backend: string; sampleMs: number } | { cmd: 'exit' };

const send = (event: Record<string, unknown>) => process.send?.(event);
const gc = (globalThis as { gc?: () => void }).gc;

async function realWorker(c: Extract<Command, { cmd: 'real-worker' }>): Promise<Record<string, unknown>> {
  const backend = await initBackend(c.backend as BackendName, () => undefined);
  const channel = new ZmqClient(c.name);
  channel.connect(c.endpoint);
  const worker = new Worker({ name: c.name, backend, channel, beacon: channel.startBeacon(1000) });
  const sample = () => {
    gc?.();
    const m = process.memoryUsage();
    const t = tf.memory();
    send({
      event: 'sample', t: Date.now(), units: worker.unitsDone, heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers,
      numTensors: t.numTensors, numBytes: t.numBytes, numDataBuffers: t.numDataBuffers,
    });
  };
  sample();
  const timer = setInterval(sample, c.sampleMs);
  const how = await worker.start();
  clearInterval(timer);
  sample();
  await worker.stop(how);
  return { backend, units: worker.unitsDone };
}

process.on('message', (c: Command) => {
  if (c.cmd === 'exit') process.exit(0);
  realWorker(c).then(
    (stats) => send({ event: 'done', ...stats }),
    (err: Error) => send({ event: 'error', message: err.stack ?? err.message }),
  );
});
process.on('disconnect', () => process.exit(0));
send({ event: 'ready', pid: process.pid });
