/**
 * `ddpm export`'s file and scripts/torch/ddpm_unet.py against this project's U-Net: the same
 * weights give the same function in PyTorch.
 *
 * test/reference/torch_forward.json holds PyTorch's outputs for the model and inputs built below
 * (a class-conditional U-Net with attention, a channel-changing shortcut, a stride-2 convolution on
 * an even and on an odd size, and an upsampling cropped from 6 to 5), from the very file this test
 * exports (its SHA-256 is in the JSON). To regenerate it (Debian's python3-torch):
 *   DDPM_TORCH_FIXTURE_DIR=/tmp/fx npx jest test/torchExport.test.ts
 *   /usr/bin/python3 scripts/torch/ddpm_unet.py forward /tmp/fx/model.safetensors /tmp/fx/inputs.json \
 *     | node -e 'const r = JSON.parse(require("fs").readFileSync(0)); r.sha256 = require("fs").readFileSync("/tmp/fx/model.sha256", "utf8"); console.log(JSON.stringify(r))' \
 *     > test/reference/torch_forward.json
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/backend';
import { SafetensorsError, decodeSafetensors } from '../src/checkpoint/safetensors';
import { encodeExport, exportMetadata } from '../src/cli/exportCommand';
import { UNetConfig } from '../src/model/config';
import { TRAIN_DEFAULTS, validateTrainConfig } from '../src/training/config';
import { paramSize } from '../src/model/paramSpecs';
import { fromTorch, toTorch, torchName } from '../src/model/torchLayout';
import { UNetModel } from '../src/model/unetModel';

interface TorchReference {
  torch: string;
  sha256: string;
  state_dict: [string, number[]][];
  shape: number[];
  values: number[];
}

const reference = JSON.parse(fs.readFileSync(path.join(__dirname, 'reference', 'torch_forward.json'), 'utf8')) as TorchReference;

const CONFIG: UNetConfig = {
  imageSize: 10, imageChannels: 2, channels: 16, channelMult: [1, 2, 2], resBlocks: 1,
  attentionResolutions: [5], dropout: 0.1, normGroups: 4, classes: 3,
};
const N = 3;
const TIMESTEPS = [0, 417, 999];
const LABELS = Uint8Array.of(0, 2, 3); // 3 = "no class"

/** Deterministic weights of every kind of parameter, scaled so that activations stay near 1. */
function fixtureWeights(model: UNetModel): Float32Array {
  const flat = new Float32Array(model.size);
  model.specs.forEach((spec, k) => {
    const leaf = spec.name.split('/').pop();
    const fanIn = paramSize(spec.shape.slice(0, -1));
    const value = (i: number) => {
      if (leaf === 'gamma') return 1 + 0.2 * Math.sin(0.7 * k + 0.37 * i);
      if (leaf === 'beta' || leaf === 'bias') return 0.1 * Math.sin(1.3 * k + 0.53 * i);
      return (1.5 / Math.sqrt(fanIn)) * Math.sin(0.9 * k + 0.29 * i);
    };
    for (let i = 0; i < paramSize(spec.shape); i++) flat[model.offsets[k] + i] = value(i);
  });
  return flat;
}

/** x in NHWC, as the model takes it; the JSON for PyTorch carries NCHW. */
const X = Float32Array.from({ length: N * 10 * 10 * 2 }, (_, i) => 0.8 * Math.sin(0.11 * i + 0.3));

function nchw(values: Float32Array, [n, h, w, c]: number[]): number[][][][] {
  return Array.from({ length: n }, (_, b) => Array.from({ length: c }, (_, ch) => Array.from({ length: h }, (_, y) =>
    Array.from({ length: w }, (_, x) => values[((b * h + y) * w + x) * c + ch]))));
}

/** As `ddpm export` writes it, for a run of the defaults on this U-Net at step 0. */
function exportFile(model: UNetModel, flat: Float32Array): Uint8Array {
  return encodeExport(model, flat, exportMetadata(validateTrainConfig({ ...TRAIN_DEFAULTS, model: model.config }), 0, 'ema', model.size));
}

describe('export to PyTorch (safetensors under scripts/torch/ddpm_unet.py\'s names)', () => {
  const model = new UNetModel(CONFIG);
  const weights = fixtureWeights(model);
  let file: Uint8Array;

  beforeAll(async () => {
    await initBackend('cpu');
    file = exportFile(model, weights);
    const dir = process.env.DDPM_TORCH_FIXTURE_DIR;
    if (dir) {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'model.safetensors'), file);
      fs.writeFileSync(path.join(dir, 'model.sha256'), createHash('sha256').update(file).digest('hex'));
      fs.writeFileSync(path.join(dir, 'inputs.json'), JSON.stringify({ x: nchw(X, [N, 10, 10, 2]), t: TIMESTEPS, labels: Array.from(LABELS) }));
    }
  });

  it('writes the file PyTorch computed the reference from (same SHA-256)', () => {
    expect(createHash('sha256').update(file).digest('hex')).toBe(reference.sha256);
  });

  it('names every parameter as PyTorch\'s state_dict does, with its shape: all of them, no others', () => {
    const ours = model.specs.map((s) => { const t = toTorch(s, new Float32Array(paramSize(s.shape))); return [t.name, t.shape] as [string, number[]]; });
    const byName = (a: [string, number[]], b: [string, number[]]) => (a[0] < b[0] ? -1 : 1);
    expect(ours.sort(byName)).toEqual([...reference.state_dict].sort(byName));
    expect(torchName('up_2/block_0/norm1/gamma')).toBe('up.2.blocks.0.norm1.weight');
    expect(torchName('mid/attn_1/proj_out/kernel')).toBe('mid_attn_1.proj_out.weight');
  });

  it(`gives PyTorch's outputs (torch ${reference.torch}) to 1e-4 for the same weights and inputs, labels and "no class" included`, () => {
    const out = tf.tidy(() => {
      const tensors = model.tensorsFromFlat(weights);
      return model.forward(tensors, tf.tensor4d(X, [N, 10, 10, 2]), TIMESTEPS, { labels: LABELS });
    });
    const ours = out.dataSync();
    out.dispose();
    expect(reference.shape).toEqual([N, CONFIG.imageChannels, 10, 10]);
    // reference.values are NCHW; compare element by element in NHWC.
    let worst = 0;
    let scale = 0;
    for (let b = 0; b < N; b++) for (let c = 0; c < 2; c++) for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) {
      const t = reference.values[((b * 2 + c) * 10 + y) * 10 + x];
      worst = Math.max(worst, Math.abs(ours[((b * 10 + y) * 10 + x) * 2 + c] - t));
      scale = Math.max(scale, Math.abs(t));
    }
    expect(scale).toBeGreaterThan(0.5); // outputs of a size where 1e-4 is a real test
    expect(worst).toBeLessThan(1e-4);
  });

  it('round-trips: decoding the file and fromTorch give back every parameter bit for bit', () => {
    const decoded = decodeSafetensors(file);
    expect(decoded.metadata.unet_config).toBe(JSON.stringify(CONFIG));
    const byName = new Map(decoded.tensors.map((t) => [t.name, t]));
    const views = model.flatViews(weights);
    model.specs.forEach((spec, i) => {
      const t = byName.get(torchName(spec.name));
      expect(t).toBeDefined();
      expect(Buffer.compare(Buffer.from(fromTorch(spec, t!.data).buffer), Buffer.from(views[i].slice().buffer))).toBe(0);
    });
  });

  it('starts the tensor data on an 8-byte boundary (the header is padded with spaces)', () => {
    const n = Number(Buffer.from(file).readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(Buffer.from(file).subarray(8, 8 + n).toString('utf8')).toMatch(/^\{.*\} *$/);
  });

  it('puts a run\'s class names, where its data had them, in the metadata', () => {
    const config = { ...validateTrainConfig({ ...TRAIN_DEFAULTS, model: CONFIG }), classNames: ['cat', 'dog', 'owl'] };
    expect(JSON.parse(exportMetadata(config, 7, 'ema', model.size).class_names)).toEqual(['cat', 'dog', 'owl']);
    expect(exportMetadata({ ...config, classNames: undefined }, 7, 'raw', model.size)).not.toHaveProperty('class_names');
  });

  it.each([
    ['a file shorter than its header length', (f: Buffer) => f.subarray(0, 4), 'too short'],
    ['a header length past the end', (f: Buffer) => { const g = Buffer.from(f); g.writeBigUInt64LE(BigInt(f.length), 0); return g; }, 'does not fit'],
    ['a truncated data section', (f: Buffer) => f.subarray(0, f.length - 4), 'do not hold shape'],
    ['a header that is not JSON', (f: Buffer) => { const g = Buffer.from(f); g[8] = 0x5b; g[9] = 0x7b; return g; }, 'not JSON'],
  ])('rejects %s with a SafetensorsError naming it', (_what, damage, message) => {
    expect(() => decodeSafetensors(damage(Buffer.from(file)))).toThrow(SafetensorsError);
    expect(() => decodeSafetensors(damage(Buffer.from(file)))).toThrow(message);
  });
});
