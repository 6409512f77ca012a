/**
 * Many float32 tensors read back from the GPU in one round trip. tfjs's `data()` reads one tensor
 * at a time: a staging buffer, a copy, a queue submit and a map each, so a worker's 268 gradient
 * tensors (ch64) cost 268 submits and maps per step (on an H100, ~15 ms of host time under a CPU
 * profiler, in a step bound by host time). Here every tensor is copied into one staging buffer in
 * one command buffer, mapped once, and each tensor's values go straight to where the caller wants
 * them (the flat gradient), with no intermediate arrays.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { isGpuBuffer, webgpuInternals } from './webgpu/internals';

export interface ReadTarget {
  tensor: tf.TensorInfo;
  /** Receives the tensor's values; its length is the tensor's size. */
  out: Float32Array;
}

/** Each target's tensor's values into its `out`: on webgpu in one round trip, elsewhere by `data()`. */
export async function readInto(targets: ReadTarget[]): Promise<void> {
  for (const t of targets) {
    const size = tf.util.sizeFromShape(t.tensor.shape);
    if (size !== t.out.length) throw new Error(`readInto: a tensor of ${size} values into ${t.out.length}`);
  }
  if (tf.getBackend() === 'webgpu') return readBackInto(tf.backend() as unknown as WebGPUBackend, targets);
  await Promise.all(targets.map(async (t) => t.out.set((await tf.engine().backend.read(t.tensor.dataId)) as Float32Array)));
}

/** Copies each target's tensor into its `out`: one submit and one map for all that live on the GPU. */
async function readBackInto(backend: WebGPUBackend, targets: ReadTarget[]): Promise<void> {
  const b = webgpuInternals(backend);
  const onGpu: { buffer: GPUBuffer; out: Float32Array; offset: number }[] = [];
  const elsewhere: ReadTarget[] = [];
  let bytes = 0;
  for (const target of targets) {
    const data = b.tensorMap.get(target.tensor.dataId);
    if (data !== undefined && data.values == null && data.dtype === 'float32' && isGpuBuffer(data.resource) && target.out.length > 0) {
      onGpu.push({ buffer: data.resource, out: target.out, offset: bytes });
      bytes += target.out.length * 4;
    } else {
      elsewhere.push(target); // values held on the CPU, or not float32: tfjs's own read
    }
  }
  const rest = Promise.all(elsewhere.map(async (t) => t.out.set((await backend.read(t.tensor.dataId)) as Float32Array)));
  if (onGpu.length > 0) {
    const staging = b.bufferManager.acquireBuffer(bytes, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ);
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    for (const part of onGpu) b.commandEncoder.copyBufferToBuffer(part.buffer, 0, staging, part.offset, part.out.length * 4);
    b.submitQueue();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, bytes);
      const mapped = new Float32Array(staging.getMappedRange(0, bytes));
      for (const part of onGpu) part.out.set(mapped.subarray(part.offset / 4, part.offset / 4 + part.out.length));
      staging.unmap();
    } finally {
      b.bufferManager.releaseBuffer(staging);
    }
  }
  await rest;
}
