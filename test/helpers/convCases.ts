/**
 * Convolution cases shared by the gradient-kernel tests (wasm's and webgpu's kernels against the
 * cpu backend's reference): strides 1 and 2, SAME and VALID, odd and even sizes, 1x1 and 3x3.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../src/rng/rng';

export interface ConvCase {
  name: string;
  batch: number;
  height: number;
  width: number;
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride: 1 | 2;
  pad: 'same' | 'valid';
}

export function convCase(batch: number, height: number, width: number, inChannels: number, outChannels: number, kernel: number, stride: 1 | 2, pad: 'same' | 'valid'): ConvCase {
  const name = `k${kernel} s${stride} ${pad}, ${batch}x${height}x${width}x${inChannels} -> ${outChannels}`;
  return { name, batch, height, width, inChannels, outChannels, kernel, stride, pad };
}

export const CASES: ConvCase[] = [
  convCase(1, 8, 8, 3, 4, 3, 1, 'same'),
  convCase(3, 7, 7, 1, 8, 3, 1, 'same'),
  convCase(3, 7, 7, 4, 5, 3, 1, 'valid'),
  convCase(1, 8, 8, 2, 3, 3, 1, 'valid'),
  // SAME with stride 2 on an even size pads 0 above and 1 below: the asymmetric case.
  convCase(3, 8, 8, 3, 4, 3, 2, 'same'),
  convCase(1, 7, 7, 8, 8, 3, 2, 'same'),
  // VALID with stride 2 on an even size never reads the last row and column.
  convCase(3, 8, 8, 2, 3, 3, 2, 'valid'),
  convCase(1, 7, 7, 4, 2, 3, 2, 'valid'),
  convCase(3, 4, 4, 16, 16, 3, 2, 'same'),
  convCase(3, 2, 2, 4, 4, 3, 1, 'same'),
  convCase(3, 5, 8, 3, 4, 3, 1, 'same'),
  convCase(3, 8, 8, 16, 8, 1, 1, 'valid'),
  convCase(1, 7, 7, 3, 6, 1, 1, 'same'),
  convCase(3, 7, 7, 4, 4, 1, 2, 'same'),
  convCase(1, 8, 8, 3, 5, 1, 2, 'valid'),
];

export interface ConvData {
  x: Float32Array;
  w: Float32Array;
  r: Float32Array;
  xShape: [number, number, number, number];
  wShape: [number, number, number, number];
  rShape: [number, number, number, number];
}

function outSize(size: number, c: ConvCase): number {
  return c.pad === 'same' ? Math.ceil(size / c.stride) : Math.ceil((size - c.kernel + 1) / c.stride);
}

export function caseData(c: ConvCase, seed: number): ConvData {
  const rng = new Rng(seed);
  const xShape: ConvData['xShape'] = [c.batch, c.height, c.width, c.inChannels];
  const wShape: ConvData['wShape'] = [c.kernel, c.kernel, c.inChannels, c.outChannels];
  const rShape: ConvData['rShape'] = [c.batch, outSize(c.height, c), outSize(c.width, c), c.outChannels];
  const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return { x: rng.gaussianFloat32(n(xShape)), w: rng.gaussianFloat32(n(wShape)), r: rng.gaussianFloat32(n(rShape)), xShape, wShape, rShape };
}

/** dL/dx and dL/dw of L = sum(conv2d(x, w) * r) on the current backend (read back asynchronously:
 * webgpu has no synchronous read in Node). */
export async function convGrads(c: ConvCase, d: ConvData): Promise<{ dx: Float32Array; dw: Float32Array }> {
  const [dx, dw] = tf.tidy(() => {
    const x = tf.tensor4d(d.x, d.xShape);
    const w = tf.tensor4d(d.w, d.wShape);
    const r = tf.tensor4d(d.r, d.rShape);
    const loss = (xv: tf.Tensor, wv: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xv as tf.Tensor4D, wv as tf.Tensor4D, c.stride, c.pad), r)) as tf.Scalar;
    return tf.grads(loss)([x, w]);
  });
  expect(dx.shape).toEqual(d.xShape);
  expect(dw.shape).toEqual(d.wShape);
  const result = { dx: (await dx.data()) as Float32Array, dw: (await dw.data()) as Float32Array };
  tf.dispose([dx, dw]);
  return result;
}
