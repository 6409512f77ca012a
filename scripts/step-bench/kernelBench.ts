/**
 * Kernel-level timings behind the step benchmark (`npm run bench:step -- --kernels`): the ch64
 * U-Net's convolution and matmul shapes at batch 16 on the chosen backend, GFLOP/s for each, so a
 * profile's milliseconds can be read against the forward convolution's rate. Medians of repeats.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendName, initBackend } from '../../src/backend/backend';
import { webgpuKernelChoiceFromEnv } from '../../src/backend/webgpu/register';
import '../../src/model/layers'; // registers the fused kernels

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Runs of CALLS_PER_RUN calls: a GPU queues them and runs them in order, so reading the last
 * result back waits for all, and the readback's latency is shared by the run. */
const CALLS_PER_RUN = 4;

/** Milliseconds per call of f: the median over `repeats` runs, after one untimed run. */
async function timeIt(f: () => tf.Tensor | tf.Tensor[], repeats: number): Promise<number> {
  const run = async () => {
    const t0 = performance.now();
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < CALLS_PER_RUN; i++) {
      const out = f();
      outs.push(...(Array.isArray(out) ? out : [out]));
    }
    await outs[outs.length - 1].data();
    const ms = (performance.now() - t0) / CALLS_PER_RUN;
    tf.dispose(outs);
    return ms;
  };
  await run();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) times.push(await run());
  return median(times);
}

function rand(shape: number[]): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', 1);
}

async function main() {
  const backend = (process.argv.find((a) => a.startsWith('--backend='))?.slice(10) ?? 'wasm') as BackendName;
  const repeats = Number(process.argv.find((a) => a.startsWith('--repeats='))?.slice(10) ?? 5);
  const batch = Number(process.argv.find((a) => a.startsWith('--batch='))?.slice(8) ?? 16);
  await initBackend(backend);
  const choice = backend === 'webgpu' ? webgpuKernelChoiceFromEnv() : undefined;
  const variant = choice ? ` (DDPM_WEBGPU_KERNELS=${choice.kernels})` : '';
  console.log(`# kernel bench on ${backend}${variant}, batch ${batch}, median of ${repeats} runs of ${CALLS_PER_RUN} calls`);
  console.log('| op | shape | ms | GFLOP/s |\n|---|---|---|---|');
  const row = (op: string, shape: string, ms: number, flops: number) => console.log(`| ${op} | ${shape} | ${ms.toFixed(1)} | ${(flops / ms / 1e6).toFixed(1)} |`);
  // --small: the mnist-fast U-Net's shapes (14x14, 16-32 channels) instead of ch64's.
  const small = process.argv.includes('--small');
  const convShapes: [number, number, number, number, 1 | 2][] = small
    ? [[14, 16, 16, 3, 1], [7, 32, 32, 3, 1], [4, 32, 32, 3, 1], [14, 48, 16, 3, 1], [14, 16, 16, 3, 2]]
    : [[32, 64, 64, 3, 1], [32, 192, 64, 3, 1], [16, 128, 128, 3, 1], [8, 128, 128, 3, 1], [16, 128, 128, 1, 1], [32, 64, 64, 3, 2], [16, 128, 128, 3, 2]];
  for (const [hw, cin, cout, k, s] of convShapes) {
    const x = rand([batch, hw, hw, cin]) as tf.Tensor4D;
    const w = rand([k, k, cin, cout]) as tf.Tensor4D;
    const outHw = Math.ceil(hw / s);
    const dy = rand([batch, outHw, outHw, cout]) as tf.Tensor4D;
    const flops = 2 * batch * outHw * outHw * cin * cout * k * k;
    const shape = `${batch}x${hw}x${hw}x${cin} k${k} s${s} -> ${cout}`;
    row('Conv2D', shape, await timeIt(() => tf.conv2d(x, w, s, 'same'), repeats), flops);
    const bias = rand([cout]);
    row('Conv2D + bias Add', shape, await timeIt(() => tf.add(tf.conv2d(x, w, s, 'same'), bias), repeats), flops);
    row('FusedConv2D (bias)', shape, await timeIt(() => tf.fused.conv2d({ x, filter: w, strides: s, pad: 'same', bias }), repeats), flops);
    row('Conv2DBackpropInput', shape, await timeIt(() => tf.conv2dTranspose(dy, w, x.shape, s, 'same'), repeats), flops);
    row('Conv2DBackpropFilter', shape, await timeIt(() => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { strides: s, pad: 'same', dataFormat: 'NHWC', filterShape: w.shape } as unknown as tf.NamedAttrMap) as tf.Tensor, repeats), flops);
    tf.dispose([x, w, dy, bias]);
  }
  if (small) return;
  const mm: [number, number, number, number, boolean, boolean][] = [
    [batch, 256, 128, 256, false, true], [batch, 256, 256, 128, false, false], [batch, 256, 256, 128, true, false], [batch, 256, 128, 256, false, false],
    [1, 256, 256, 128, false, false], [1, 1024, 1024, 1024, false, false], [1, batch, 256, 128, false, false], [1, 256, batch, 128, true, false],
  ];
  for (const [b, m, kk, n, ta, tb] of mm) {
    const a = rand(ta ? [b, kk, m] : [b, m, kk]) as tf.Tensor3D;
    const bb = rand(tb ? [b, n, kk] : [b, kk, n]) as tf.Tensor3D;
    row('BatchMatMul', `${b}x${m}x${kk}x${n}${ta ? ' tA' : ''}${tb ? ' tB' : ''}`, await timeIt(() => tf.matMul(a, bb, ta, tb), repeats), 2 * b * m * kk * n);
    tf.dispose([a, bb]);
  }
  const x = rand([batch, 32, 32, 64]);
  const n = x.size;
  // Absent where tfjs's own kernels run alone (webgpu with DDPM_WEBGPU_KERNELS=tfjs).
  if (tf.getKernel('DdpmGroupNorm', tf.getBackend()) !== undefined) {
    const gamma = rand([64]);
    const beta = rand([64]);
    const dy = rand([batch, 32, 32, 64]);
    const attrs = { groups: 32, eps: 1e-6, swish: true } as unknown as tf.NamedAttrMap;
    row('DdpmGroupNorm+swish (GB/s)', `${batch}x32x32x64`, await timeIt(() => tf.engine().runKernel('DdpmGroupNorm', { x, gamma, beta }, attrs) as tf.Tensor[], repeats), n * 8 / 2);
    const [, mean, rstd] = tf.engine().runKernel('DdpmGroupNorm', { x, gamma, beta }, attrs) as tf.Tensor[];
    row('DdpmGroupNormGrad+swish (GB/s)', `${batch}x32x32x64`, await timeIt(() => tf.engine().runKernel('DdpmGroupNormGrad', { dy, x, gamma, beta, mean, rstd }, attrs) as tf.Tensor[], repeats), n * 12 / 2);
  }
  row('Multiply (bytes/s as GB/s)', `${batch}x32x32x64`, await timeIt(() => tf.mul(x, x), repeats), n * 12 / 2);
  row('Add', `${batch}x32x32x64`, await timeIt(() => tf.add(x, x), repeats), n * 12 / 2);
  row('Transpose', `${batch}x32x32x64 -> 3,1,2,0`, await timeIt(() => tf.transpose(x, [3, 1, 2, 0]), repeats), n * 8 / 2);
  // A conv's bias gradient, and the time embedding's broadcast gradient (per example).
  row('Sum over 0,1,2 (GB/s)', `${batch}x32x32x64`, await timeIt(() => tf.sum(x, [0, 1, 2]), repeats), n * 4 / 2);
  row('Sum over 1,2 (GB/s)', `${batch}x32x32x64`, await timeIt(() => tf.sum(x, [1, 2]), repeats), n * 4 / 2);
  row('Sigmoid', `${batch}x32x32x64`, await timeIt(() => tf.sigmoid(x), repeats), n * 8 / 2);
  row('Pad', `${batch}x32x32x64`, await timeIt(() => tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), repeats), n * 8 / 2);
  row('Slice', `${batch}x32x32x64 -> half channels`, await timeIt(() => tf.slice(x, [0, 0, 0, 0], [batch, 32, 32, 32]), repeats), n * 4 / 2);
  tf.dispose(x);
  await dispatchCost();
}

/** What one kernel call costs beyond its arithmetic: a chain of adds of 64 values, timed to
 * when the last was issued and to when its result was read back (medians of 5 chains). */
async function dispatchCost(): Promise<void> {
  const chain = 1000;
  const a = tf.ones([64]);
  const issue: number[] = [];
  const done: number[] = [];
  for (let rep = 0; rep < 6; rep++) {
    const t0 = performance.now();
    const outs: tf.Tensor[] = [];
    let y = a;
    for (let i = 0; i < chain; i++) outs.push((y = tf.add(y, a)));
    const t1 = performance.now();
    await y.data();
    const t2 = performance.now();
    tf.dispose(outs);
    // The first chain compiles the program and fills the buffer pool: not counted.
    if (rep > 0) {
      issue.push(((t1 - t0) * 1000) / chain);
      done.push(((t2 - t0) * 1000) / chain);
    }
  }
  a.dispose();
  console.log(`# per kernel call (${chain} chained adds of 64 values): ${median(issue).toFixed(1)} us to issue, ${median(done).toFixed(1)} us to completion`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
