/**
 * Class-conditional models and classifier-free guidance, the parts that are not elsewhere: the
 * labels on the wire (WORK), guidance's arithmetic (Ho & Salimans 2022, Eq. 6) and sampling with
 * it. The class embedding's gradients are in gradients.test.ts, the batch plan's labels in
 * optimizer.test.ts, the data's labels in data.test.ts, training with worker processes in
 * distributed.test.ts, webgpu replay in stepReplay.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/backend';
import { guide } from '../src/diffusion/guidance';
import { type UNetConfig, presetConfig } from '../src/model/config';
import { oneHotRows } from '../src/model/unet';
import { UNetModel } from '../src/model/unetModel';
import { decodeMessage } from '../src/protocol/messages';
import { decodeWork, encodeWork } from '../src/protocol/units';
import { makeSchedule } from '../src/schedule';
import { cyclingLabels, generateImages, guidanceCaveat } from '../src/training/generate';
import type { WorkUnit } from '../src/training/workUnit';

const conditional: UNetConfig = { ...presetConfig('tiny'), classes: 10 };
const stamp = { runId: 'run', step: 3, paramVersion: 3 };

function unit(labels?: Uint8Array): WorkUnit {
  return {
    step: 3, unitId: 1, count: 2, pixels: new Uint8Array(2 * 64).fill(9), timesteps: Int32Array.of(5, 900),
    noiseSeeds: Uint32Array.of(1, 2), flips: Uint8Array.of(0, 1), dropoutSeed: 4, ...(labels && { labels }),
  };
}

const roundTrip = (u: WorkUnit, config: UNetConfig = conditional) => decodeWork(decodeMessage(encodeWork(u, stamp, 1000, [8, 8, 1])), config, 1000);

describe('WORK carries a conditional model\'s labels', () => {
  it('round-trips them, "no class" (the class count) included', () => {
    expect(Array.from(roundTrip(unit(Uint8Array.of(7, 10))).labels!)).toEqual([7, 10]);
  });

  it('rejects a label above "no class", a conditional WORK without labels, and labels for an unconditional model', () => {
    expect(() => roundTrip(unit(Uint8Array.of(7, 11)))).toThrow('label 11 outside [0, 10] (10: no class)');
    expect(() => roundTrip(unit())).toThrow(/labels/);
    expect(() => roundTrip(unit(Uint8Array.of(1, 2)), presetConfig('tiny'))).toThrow('WORK has labels but the model is unconditional');
    expect(roundTrip(unit(), presetConfig('tiny')).labels).toBeUndefined();
  });
});

describe('classifier-free guidance', () => {
  beforeAll(() => initBackend('cpu'));

  it('is uncond + s (cond - uncond): s = 0 the unconditional output, 1 the conditional, 3 beyond it', () => {
    const cond = tf.tensor4d([1, 2, -1, 0.5], [1, 2, 2, 1]);
    const uncond = tf.tensor4d([0, 1, 1, 0.5], [1, 2, 2, 1]);
    expect(Array.from(guide(cond, uncond, 0).dataSync())).toEqual([0, 1, 1, 0.5]);
    expect(Array.from(guide(cond, uncond, 1).dataSync())).toEqual([1, 2, -1, 0.5]);
    expect(Array.from(guide(cond, uncond, 3).dataSync())).toEqual([3, 4, -5, 0.5]);
    tf.dispose([cond, uncond]);
  });

  it('is flagged when the run never trained "no class" (--class-dropout 0), and only then', () => {
    const run = (classDropout: number, model = conditional) => ({ model, classDropout });
    expect(guidanceCaveat(run(0), 2)).toMatch(/^note: this run trains with --class-dropout 0, so its "no class" prediction is untrained and guidance 2 mixes it in/);
    expect([guidanceCaveat(run(0.1), 2), guidanceCaveat(run(0), 1), guidanceCaveat(run(0, presetConfig('tiny')), 2)]).toEqual([undefined, undefined, undefined]);
  });

  it('one-hot rows put a 1 at each label and refuse a label past the table', () => {
    expect(Array.from(oneHotRows([2, 0], 3))).toEqual([0, 0, 1, 1, 0, 0]);
    expect(() => oneHotRows([3], 3)).toThrow('label 3 is not below 3');
  });

  describe('sampling a tiny conditional model (every parameter non-zero)', () => {
    const model = new UNetModel(conditional);
    const params = model.initialParams(2, { noZeroInit: true });
    const schedule = makeSchedule('linear', 1000);
    const draw = (labels: Uint8Array, guidance?: number) =>
      generateImages(model, params, schedule, { n: 4, seed: 5, sampler: 'ddim', steps: 4, eta: 0, prediction: 'eps', labels, guidance });
    const none = new Uint8Array(4).fill(10);
    const bits = (a: Float32Array) => Buffer.from(a.buffer);

    it('gives other images for other classes', async () => {
      expect(bits(await draw(cyclingLabels(4, 10)))).not.toEqual(bits(await draw(Uint8Array.of(5, 6, 7, 8))));
    });

    it('at scale 0 gives exactly the "no class" images: the guided pass (twice the batch) splits back correctly', async () => {
      expect(bits(await draw(cyclingLabels(4, 10), 0))).toEqual(bits(await draw(none)));
    });

    it('at scale 2 gives neither the conditional nor the unconditional images', async () => {
      const guided = bits(await draw(cyclingLabels(4, 10), 2));
      expect(guided).not.toEqual(bits(await draw(cyclingLabels(4, 10))));
      expect(guided).not.toEqual(bits(await draw(none)));
    });

    it('needs labels for a conditional model and refuses them for an unconditional one', async () => {
      await expect(generateImages(model, params, schedule, { n: 1, seed: 1, sampler: 'ddim', steps: 2, eta: 0, prediction: 'eps' })).rejects.toThrow(/needs a label per image/);
      const plain = new UNetModel(presetConfig('tiny'));
      await expect(generateImages(plain, plain.initialParams(1), schedule, { n: 1, seed: 1, sampler: 'ddim', steps: 2, eta: 0, prediction: 'eps', labels: Uint8Array.of(0) }))
        .rejects.toThrow('labels given for an unconditional model');
    });
  });
});
