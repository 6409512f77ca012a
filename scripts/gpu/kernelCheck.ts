/**
 * This project's webgpu kernels against the cpu backend's reference on whatever adapter Dawn finds:
 * what test/webgpuKernels.test.ts checks in CI on llvmpipe, here at the U-Net's own shapes and on
 * a real GPU (a device machine has no jest; scripts/gpu/device-bench.sh runs this first). A race
 * in workgroup memory that a CPU rasterizer's scheduling hides would show here. One line per
 * check; exit 1 if any is off.
 *
 *   node kernelCheck.js [--quick] [--write-references FILE | --references FILE]
 *   --quick: the small shapes only, for a CPU run. The cpu backend's references take minutes of one
 *   core at the U-Net's shapes: --write-references computes them here (no GPU needed) and the GPU
 *   run reads them with --references, so device time goes to the GPU's side.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/backend';
import { readInto } from '../../src/backend/readBack';
import { dropout, groupNormAct } from '../../src/model/layers';
import { UNetModel } from '../../src/model/unetModel';
import { Rng } from '../../src/rng/rng';
// The comparison the tests make (test/webgpuKernels.test.ts): a NaN (empty reference) fails too.
import { relativeMax } from '../../test/helpers/numeric';

/** float32 summation-order differences are ~1e-6 of the largest value; a wrong tap, tile or slice is O(1). */
const TOLERANCE = 1e-4;

type Shape4 = [number, number, number, number];
type Check = { name: string; run: () => tf.Tensor[] };

function data(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(new Rng(seed).gaussianFloat32(shape.reduce((a, b) => a * b, 1)), shape);
}

/** dL/dx and dL/dw of L = sum(conv2d(x, w) * r): the input and weight gradient kernels. */
function convCheck(x: Shape4, outChannels: number, kernel: number, stride: 1 | 2, pad: 'same' | 'valid'): Check {
  return {
    name: `conv gradients ${x.join('x')} k${kernel} s${stride} ${pad} -> ${outChannels}`,
    run: () => {
      const xv = data(x, 1) as tf.Tensor4D;
      const w = data([kernel, kernel, x[3], outChannels], 2) as tf.Tensor4D;
      const y = tf.conv2d(xv, w, stride, pad);
      const r = data(y.shape, 3);
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), r)) as tf.Scalar)([xv, w]);
    },
  };
}

function sumCheck(shape: number[], axes: number[], keepDims: boolean): Check {
  return { name: `sum ${shape.join('x')} over ${axes.join(',')}${keepDims ? ' (keepDims)' : ''}`, run: () => [tf.sum(data(shape, 4), axes, keepDims)] };
}

/** GroupNorm + swish, its value and its gradients with respect to x, gamma and beta. */
function groupNormCheck(x: Shape4, groups: number): Check {
  return {
    name: `GroupNorm+swish ${x.join('x')}, ${groups} groups: y, dx, dgamma, dbeta`,
    run: () => {
      const xv = data(x, 5);
      const gamma = data([x[3]], 6);
      const beta = data([x[3]], 7);
      const r = data(x, 8);
      const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => groupNormAct(a as tf.Tensor4D, g, b, groups, 1e-6, true);
      return [f(xv, gamma, beta), ...tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, g, b), r)) as tf.Scalar)([xv, gamma, beta])];
    },
  };
}

/** The forward convolution (conv2d.ts's tiled program; with DDPM_WEBGPU_CONV=tfjs, tfjs's im2col matmul, which at batch 1 over
 * 256 channels at 8x8 would split K with atomics: deterministicMatMul.ts). */
function convForwardCheck(x: Shape4, outChannels: number): Check {
  return { name: `conv2d ${x.join('x')} k3 -> ${outChannels} (forward)`, run: () => [tf.conv2d(data(x, 9) as tf.Tensor4D, data([3, 3, x[3], outChannels], 10) as tf.Tensor4D, 1, 'same')] };
}

/** Dropout (mask computed on the GPU; the cpu backend builds it on the host) and its gradient. */
function dropoutCheck(x: Shape4, rate: number): Check {
  return {
    name: `dropout ${x.join('x')} rate ${rate}: y, dx`,
    run: () => {
      const xv = data(x, 11) as tf.Tensor4D;
      const r = data(x, 12);
      const f = (a: tf.Tensor) => dropout(a as tf.Tensor4D, rate, 123456789, 5);
      return [f(xv), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), r)))(xv)];
    },
  };
}

async function values(backend: string, check: Check): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(check.run);
  const read = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return read;
}

/** References file: one JSON header line ({check name: output lengths}), then the float32 values in order. */
function writeReferences(file: string, refs: Map<string, Float32Array[]>): void {
  const header = JSON.stringify(Object.fromEntries([...refs].map(([name, outs]) => [name, outs.map((o) => o.length)])));
  const parts: Uint8Array[] = [Buffer.from(`${header}\n`)];
  for (const outs of refs.values()) for (const o of outs) parts.push(new Uint8Array(o.buffer, o.byteOffset, o.byteLength));
  fs.writeFileSync(`${file}.tmp`, Buffer.concat(parts));
  fs.renameSync(`${file}.tmp`, file);
}

function readReferences(file: string): Map<string, Float32Array[]> {
  const bytes = fs.readFileSync(file);
  const newline = bytes.indexOf(10);
  const header = JSON.parse(bytes.subarray(0, newline).toString()) as Record<string, number[]>;
  const refs = new Map<string, Float32Array[]>();
  let offset = newline + 1;
  for (const [name, lengths] of Object.entries(header)) {
    refs.set(name, lengths.map((n) => {
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + n * 4));
      offset += n * 4;
      return out;
    }));
  }
  return refs;
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

/** readInto (one GPU round trip for many tensors) against tfjs's data(), tensor by tensor: the
 * U-Net's parameter shapes, computed on the GPU, read back as a worker reads its gradient. */
async function readIntoCheck(): Promise<boolean> {
  await tf.setBackend('webgpu');
  const model = new UNetModel({ imageSize: 32, imageChannels: 3, channels: 64, channelMult: [1, 2, 2], resBlocks: 2, attentionResolutions: [16], dropout: 0, normGroups: 32 });
  const tensors = model.specs.map((spec, i) => tf.tidy(() => tf.mul(data(spec.shape, 100 + i), 3)));
  const flat = new Float32Array(model.size);
  const t0 = performance.now();
  await readInto(model.flatTargets(tensors, flat));
  const ms = performance.now() - t0;
  let mismatches = 0;
  for (const [i, t] of tensors.entries()) {
    const v = (await t.data()) as Float32Array;
    if (!Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(Buffer.from(flat.buffer, model.offsets[i] * 4, v.byteLength))) mismatches += 1;
  }
  tf.dispose(tensors);
  const ok = mismatches === 0;
  console.log(`${ok ? 'PASS' : 'FAIL'} readInto of the ch64 U-Net's ${tensors.length} parameter shapes (${model.size} values): ` +
    `${ok ? 'the same bits as data()' : `${mismatches} tensors DIFFER from data()`} (${ms.toFixed(1)} ms)`);
  return ok;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const writeTo = flag('--write-references');
  const readFrom = flag('--references');
  const stored = readFrom === undefined ? undefined : readReferences(readFrom);
  await initBackend('cpu');
  if (writeTo === undefined) await initBackend('webgpu');
  const batch = quick ? 2 : 8;
  const checks: Check[] = [
    // Tiles cut at the edges in m and n, and k cut into slices with a short last one.
    convCheck([3, 13, 13, 16], 70, 3, 1, 'same'),
    convCheck([7, 10, 10, 4], 5, 3, 1, 'same'),
    convCheck([3, 8, 8, 3], 4, 3, 2, 'same'),
    // The ch64 U-Net's convolutions.
    convCheck([batch, 32, 32, 64], 64, 3, 1, 'same'),
    convCheck([batch, 32, 32, 64], 64, 3, 2, 'same'),
    convCheck([batch, 16, 16, 128], 128, 3, 1, 'same'),
    convCheck([batch, 8, 8, 128], 128, 3, 1, 'same'),
    convCheck([batch, 16, 16, 256], 128, 1, 1, 'valid'),
    sumCheck([quick ? 2 : 64, 32, 32, 64], [0, 1, 2], false),
    sumCheck([quick ? 2 : 64, 32, 32, 64], [1, 2], true),
    sumCheck([5, 1000, 3], [1], false),
    groupNormCheck([batch, 32, 32, 64], 32),
    groupNormCheck([batch, 8, 8, 128], 32),
    convForwardCheck([1, 8, 8, 256], 128),
    dropoutCheck([batch, 32, 32, 128], 0.1),
  ];
  if (writeTo !== undefined) {
    const refs = new Map<string, Float32Array[]>();
    for (const check of checks) refs.set(check.name, await values('cpu', check));
    writeReferences(writeTo, refs);
    console.log(`wrote the cpu backend's values for ${checks.length} checks to ${writeTo}`);
    return;
  }
  let failed = 0;
  for (const check of checks) {
    const t0 = performance.now();
    const reference = stored?.get(check.name) ?? await values('cpu', check);
    const gpu = await values('webgpu', check);
    const again = await values('webgpu', check);
    const errors = gpu.map((v, i) => relativeMax(v, reference[i]));
    const repeats = gpu.every((v, i) => Buffer.from(v.buffer).equals(Buffer.from(again[i].buffer)));
    const ok = errors.every((e) => e < TOLERANCE) && repeats;
    if (!ok) failed += 1;
    console.log(`${ok ? 'PASS' : 'FAIL'} ${check.name}: max relative error ${errors.map((e) => e.toExponential(1)).join(', ')}; ` +
      `bits ${repeats ? 'repeat' : 'DIFFER between two runs'} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  if (!(await readIntoCheck())) failed += 1;
  const total = checks.length + 1;
  console.log(`${total - failed} of ${total} checks passed (tolerance ${TOLERANCE} relative to the largest value)`);
  if (failed > 0) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
