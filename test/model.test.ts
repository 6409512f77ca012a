/**
 * The U-Net: parameter counts against published numbers, configuration validation, the forward
 * pass's shapes, that paramSpecs and the forward pass agree parameter for parameter, the
 * reference code's zero initialisation, and the sinusoidal timestep embedding against values
 * computed by hand.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/backend';
import { InvalidModelConfigError, UNetConfig, presetConfig, validateConfig } from '../src/model/config';
import { initParams } from '../src/model/init';
import { Params } from '../src/model/layers';
import { paramSize, parameterCount, unetParamSpecs } from '../src/model/paramSpecs';
import { timestepEmbedding } from '../src/model/timeEmbedding';
import { unetForward } from '../src/model/unet';
import { UNetModel } from '../src/model/unetModel';
import { Rng } from '../src/rng/rng';

/** PERFORMANCE.md's ch-32/ch-64 U-Net at 32x32x3 (mult 1,2,2, 2 residual blocks, attention at 16x16). */
function performanceConfig(channels: number): UNetConfig {
  return { imageSize: 32, imageChannels: 3, channels, channelMult: [1, 2, 2], resBlocks: 2, attentionResolutions: [16], dropout: 0, normGroups: 32 };
}

/** 28x28 goes 28 -> 14 -> 7 -> 4: odd sizes, and an upsample from 4 back to 7. */
const MNIST_LIKE: UNetConfig = { imageSize: 28, imageChannels: 1, channels: 8, channelMult: [1, 2, 2, 2], resBlocks: 1, attentionResolutions: [7], dropout: 0, normGroups: 4 };

function flatParams(model: UNetModel, seed: number, noZeroInit: boolean): Float32Array {
  return model.initialParams(seed, { noZeroInit });
}

function randomTensor(shape: [number, number, number, number], seed: number): tf.Tensor4D {
  return tf.tensor4d(new Rng(seed).gaussianFloat32(shape.reduce((a, b) => a * b, 1)), shape);
}

function expectConfigError(config: UNetConfig, ...fragments: string[]): void {
  let error: unknown;
  try {
    validateConfig(config);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(InvalidModelConfigError);
  for (const fragment of fragments) expect((error as Error).message).toContain(fragment);
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('parameterCount (identical to the PyTorch models of the same architecture)', () => {
  it('is 35,746,307 for preset cifar10, the DDPM paper\'s 35.7M CIFAR-10 model', () => {
    expect(parameterCount(presetConfig('cifar10'))).toBe(35_746_307);
  });

  it('is 6,472,195 for ch 64, mult 1,2,2, 2 residual blocks, attention at 16, 32x32x3', () => {
    expect(parameterCount(performanceConfig(64))).toBe(6_472_195);
  });

  it('is 1,624,323 for the same architecture with ch 32', () => {
    expect(parameterCount(performanceConfig(32))).toBe(1_624_323);
  });

  it('is 387,201 for preset mnist (ch 16, mult 1,2,2, 2 residual blocks, 28x28x1)', () => {
    expect(parameterCount(presetConfig('mnist'))).toBe(387_201);
  });

  it('adds (classes + 1) x 4 ch for a class-conditional model: a row per class and one for "no class"', () => {
    expect(parameterCount({ ...presetConfig('cifar10'), classes: 10 })).toBe(35_746_307 + 11 * 512);
    expect(parameterCount({ ...presetConfig('mnist'), classes: 0 })).toBe(387_201);
  });

  it('equals the sum of the spec shapes, which have unique names', () => {
    const specs = unetParamSpecs(presetConfig('tiny'));
    expect(new Set(specs.map((s) => s.name)).size).toBe(specs.length);
    expect(new UNetModel(presetConfig('tiny')).size).toBe(parameterCount(presetConfig('tiny')));
  });
});

describe('validateConfig', () => {
  it.each(['tiny', 'mnist', 'cifar10'])('accepts preset %s', (name) => {
    expect(() => validateConfig(presetConfig(name))).not.toThrow();
  });

  it('accepts a 28x28 U-Net whose levels are 28, 14, 7 and 4', () => {
    expect(() => validateConfig(MNIST_LIKE)).not.toThrow();
  });

  it('rejects an attention resolution that is not a level size, naming it and the level sizes', () => {
    expectConfigError({ ...presetConfig('tiny'), attentionResolutions: [12] }, 'attention resolution 12', 'levels: 8, 4');
  });

  it('rejects a channel count not divisible by the norm groups, naming both', () => {
    expectConfigError({ ...presetConfig('tiny'), channels: 6 }, 'channels 6', 'norm-groups 4');
  });

  it('checks every level\'s channel count against the norm groups (8 x 3 = 24 is not divisible by 16)', () => {
    expectConfigError({ ...presetConfig('tiny'), channels: 8, channelMult: [2, 3], normGroups: 16 }, 'channels 24', 'norm-groups 16');
  });

  it('rejects a non-integer channel multiplier, naming it', () => {
    expectConfigError({ ...presetConfig('tiny'), channelMult: [1, 1.5] }, 'channel-mult entry', '1.5');
  });

  it('rejects a dropout rate outside [0, 1), naming it', () => {
    expectConfigError({ ...presetConfig('tiny'), dropout: 1 }, 'dropout', '1');
  });

  it('rejects a class count that uint8 labels cannot carry with "no class" beside it', () => {
    expectConfigError({ ...presetConfig('tiny'), classes: 256 }, 'classes must be an integer in [0, 255], got 256');
    expectConfigError({ ...presetConfig('tiny'), classes: -1 }, 'classes must be an integer in [0, 255], got -1');
  });

  it('rejects an unknown preset, naming it and the allowed ones', () => {
    expect(() => presetConfig('imagenet')).toThrow(/"imagenet".*tiny, mnist-fast, mnist, cifar10/);
  });
});

describe('unetForward', () => {
  it.each([
    ['tiny (8x8x1)', presetConfig('tiny')],
    ['28x28x1, levels 28/14/7/4', MNIST_LIKE],
  ] as const)('returns a tensor of the input\'s shape for %s', (_name, config) => {
    const model = new UNetModel(config);
    const tensors = model.tensorsFromFlat(flatParams(model, 3, true));
    const shape: [number, number, number, number] = [2, config.imageSize, config.imageSize, config.imageChannels];
    const out = tf.tidy(() => model.forward(tensors, randomTensor(shape, 4), [5, 700]));
    expect(out.shape).toEqual(shape);
    expect(Array.from(out.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([out, ...tensors]);
  });

  it.each([
    ['unconditional', presetConfig('tiny')],
    ['class-conditional', { ...presetConfig('tiny'), classes: 10 }],
  ])('reads exactly the parameters paramSpecs lists, no more and no fewer (%s)', (_kind, config) => {
    const model = new UNetModel(config);
    const tensors = model.tensorsFromFlat(flatParams(model, 3, true));
    const read = new Set<string>();
    const params = new Proxy(model.paramMap(tensors) as Record<string, tf.Tensor>, {
      get(target, name) {
        if (typeof name === 'string') read.add(name);
        return target[name as string];
      },
    });
    tf.tidy(() => unetForward(model.config, params, randomTensor([1, 8, 8, 1], 4), [10], { labels: Uint8Array.of(7) }));
    expect([...read].sort()).toEqual(model.specs.map((s) => s.name).sort());
    tf.dispose(tensors);
  });

  describe('with every parameter initialised non-zero (noZeroInit)', () => {
    const model = new UNetModel(presetConfig('tiny'));
    let grads: Float32Array[];
    let largest: number;

    beforeAll(() => {
      const tensors = model.tensorsFromFlat(flatParams(model, 3, true));
      const x = randomTensor([2, 8, 8, 1], 4);
      const r = randomTensor([2, 8, 8, 1], 5);
      const g = tf.grads((...p: tf.Tensor[]) => tf.sum(tf.mul(model.forward(p, x, [20, 600]), r)) as tf.Scalar)(tensors);
      grads = g.map((t) => t.dataSync() as Float32Array);
      largest = Math.max(...grads.map((v) => Math.max(...v.map(Math.abs))));
      tf.dispose([...g, ...tensors, x, r]);
    });

    it('every parameter except the attention key biases has a non-zero gradient somewhere', () => {
      // Key biases add q.b to every logit of a query's row, which softmax ignores: their exact
      // gradient is 0 (as in the reference code). Every other tensor must matter to the output.
      const dead = model.specs
        .filter((s, i) => !s.name.endsWith('/k/bias') && Math.max(...grads[i].map(Math.abs)) <= 1e-4 * largest)
        .map((s) => s.name);
      expect(dead).toEqual([]);
    });

    it('the attention key biases\' gradients vanish up to float32 rounding', () => {
      const keyBiases = model.specs.map((s, i) => [s.name, i] as const).filter(([name]) => name.endsWith('/k/bias'));
      expect(keyBiases.map(([name]) => name)).toEqual(['down_1/attn_0/k/bias', 'mid/attn_1/k/bias', 'up_1/attn_0/k/bias', 'up_1/attn_1/k/bias']);
      for (const [, i] of keyBiases) expect(Math.max(...grads[i].map(Math.abs))).toBeLessThan(1e-6 * largest);
    });
  });

  it.each(['temb/dense0/kernel', 'conv_in/bias', 'down_1/attn_0/q/kernel', 'mid/block_2/conv2/bias', 'up_1/upsample/kernel', 'conv_out/kernel'])(
    'throws naming the parameter when %s is missing',
    (name) => {
      const model = new UNetModel(presetConfig('tiny'));
      const tensors = model.tensorsFromFlat(flatParams(model, 3, true));
      const params: Record<string, tf.Tensor> = { ...model.paramMap(tensors) };
      delete params[name];
      expect(() => tf.tidy(() => unetForward(model.config, params as Params, randomTensor([1, 8, 8, 1], 4), [10]))).toThrow(`missing model parameter "${name}"`);
      tf.dispose(tensors);
    },
  );
});

describe('initialisation', () => {
  const model = new UNetModel(presetConfig('tiny'));

  it('with the default (reference) init, the model\'s output is exactly zero: conv_out starts at zero', () => {
    const tensors = model.tensorsFromFlat(flatParams(model, 3, false));
    const out = tf.tidy(() => model.forward(tensors, randomTensor([2, 8, 8, 1], 4), [1, 999]));
    expect(Array.from(out.dataSync()).every((v) => v === 0)).toBe(true);
    tf.dispose([out, ...tensors]);
  });

  it('with noZeroInit the same input gives a non-zero output', () => {
    const tensors = model.tensorsFromFlat(flatParams(model, 3, true));
    const out = tf.tidy(() => model.forward(tensors, randomTensor([2, 8, 8, 1], 4), [1, 999]));
    expect(Math.max(...Array.from(out.dataSync()).map(Math.abs))).toBeGreaterThan(1e-2);
    tf.dispose([out, ...tensors]);
  });

  it('zero-initialises the last conv of each residual block, the attention output and conv_out', () => {
    const zeroKernels = model.specs.filter((s) => s.shape.length > 1 && s.init === 'zero').map((s) => s.name);
    expect(zeroKernels.every((n) => /\/conv2\/kernel$|\/proj_out\/kernel$|^conv_out\/kernel$/.test(n))).toBe(true);
    expect(zeroKernels).toContain('conv_out/kernel');
    expect(zeroKernels).toContain('mid/attn_1/proj_out/kernel');
    expect(zeroKernels).toContain('mid/block_1/conv2/kernel');
  });

  it('draws fan-avg uniform kernels within +-sqrt(3 / fan_avg): conv_in (3x3x1x8) has limit sqrt(3 / 40.5)', () => {
    const i = model.specs.findIndex((s) => s.name === 'conv_in/kernel');
    const values = initParams(model.specs, 3)[i];
    const limit = Math.sqrt(3 / ((9 * 1 + 9 * 8) / 2));
    const largest = Math.max(...values.map(Math.abs));
    expect(largest).toBeLessThanOrEqual(limit);
    expect(largest).toBeGreaterThan(0.9 * limit);
  });

  it('is a function of the seed: the same seed gives the same vector, another seed a different one', () => {
    expect(flatParams(model, 3, false)).toEqual(flatParams(model, 3, false));
    expect(flatParams(model, 4, false)).not.toEqual(flatParams(model, 3, false));
  });
});

describe('UNetModel over a flat parameter vector', () => {
  const model = new UNetModel(presetConfig('tiny'));

  it('tensorsFromFlat then flatten gives back the same vector', async () => {
    const flat = flatParams(model, 3, true);
    const tensors = model.tensorsFromFlat(flat);
    expect(await model.flatten(tensors)).toEqual(flat);
    tf.dispose(tensors);
  });

  it('rejects a vector of the wrong length, naming both lengths', () => {
    expect(() => model.tensorsFromFlat(new Float32Array(model.size - 1))).toThrow(`${model.size - 1} values, model needs ${model.size}`);
  });

  it('lays the tensors out in spec order with no gaps', () => {
    model.specs.forEach((s, i) => {
      const end = i + 1 < model.specs.length ? model.offsets[i + 1] : model.size;
      expect(end - model.offsets[i]).toBe(paramSize(s.shape));
    });
  });
});

describe('timestepEmbedding (DDPM get_timestep_embedding)', () => {
  // dim 6: half = 3, frequencies exp(-ln(10000) i / 2) = 1, 1e-2, 1e-4; values from Python's math.
  it('is [sin(t f_i), cos(t f_i)] with f = 1, 1e-2, 1e-4 for dim 6, at t = 0, 2 and 999', () => {
    const expected = [
      [0, 0, 0, 1, 1, 1],
      [0.9092974268256817, 0.01999866669333308, 0.0001999999986666667, -0.4161468365471424, 0.9998000066665778, 0.9999999800000001],
      [-0.026460752737064126, -0.5356033346142913, 0.0997339157312991, 0.9996498529808264, -0.8444696962887723, 0.995014143644653],
    ];
    const actual = timestepEmbedding([0, 2, 999], 6);
    expect(actual.length).toBe(18);
    expected.flat().forEach((v, i) => expect(actual[i]).toBeCloseTo(v, 6));
  });

  it('is each float64 value rounded once to float32', () => {
    const actual = timestepEmbedding([999], 6);
    expect(actual[1]).toBe(Math.fround(-0.5356033346142913));
    expect(actual[4]).toBe(Math.fround(-0.8444696962887723));
  });
});
