/**
 * Many float32 tensors read back from the GPU in one round trip. tfjs's `data()` reads one tensor
 * at a time: a staging buffer, a copy, a queue submit and a map each, so a worker's ~300 gradient
 * tensors cost ~300 submits and maps per step (on an H100, ~15 ms of host time under a CPU
 * profiler, in a step bound by host time). Here every tensor is copied into one staging buffer in
 * one command buffer, mapped once, and each tensor's values go straight to where the caller wants
 * them (the flat gradient), with no intermediate arrays.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/** The parts of tfjs's WebGPUBackend (4.x) that a batched copy needs; `data()` uses the same. */
interface BackendInternals {
  tensorMap: { get(dataId: object): { values: unknown; resource?: unknown; dtype: string } | undefined };
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer; releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void };
  commandEncoder: GPUCommandEncoder;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export interface ReadTarget {
  tensor: tf.TensorInfo;
  /** Receives the tensor's values; its length is the tensor's size. */
  out: Float32Array;
}

/** A read under way: the GPU's copies are submitted; the values land in arrays given later. */
export interface PendingRead {
  /** Waits for the values and copies tensor i's into outs[i] (its length is the tensor's size). */
  into(outs: Float32Array[]): Promise<void>;
  /** Gives up the read (its staging memory goes back) if `into` was not called. */
  discard(): Promise<void>;
}

/**
 * Starts reading `tensors` back. The caller can allocate the arrays for them, and touch their
 * fresh pages, while the GPU finishes (a worker's 26 MB gradient: ~15 ms of page faults on a
 * 2-vCPU VM, the host's idle time at the end of a GPU step), then calls `into`.
 */
export function startRead(tensors: tf.TensorInfo[]): PendingRead {
  if (tf.getBackend() === 'webgpu') return startGpuRead(tf.backend() as unknown as WebGPUBackend, tensors);
  const backend = tf.engine().backend;
  const values = tensors.map((t) => backend.read(t.dataId) as Promise<Float32Array>);
  return {
    into: async (outs) => {
      checkLengths(tensors, outs);
      (await Promise.all(values)).forEach((v, i) => outs[i].set(v));
    },
    discard: async () => {
      await Promise.allSettled(values);
    },
  };
}

/** Each target's tensor's values into its `out`: on webgpu in one round trip, elsewhere by `data()`. */
export async function readInto(targets: ReadTarget[]): Promise<void> {
  checkLengths(targets.map((t) => t.tensor), targets.map((t) => t.out));
  await startRead(targets.map((t) => t.tensor)).into(targets.map((t) => t.out));
}

function checkLengths(tensors: tf.TensorInfo[], outs: Float32Array[]): void {
  if (outs.length !== tensors.length) throw new Error(`readInto: ${tensors.length} tensors into ${outs.length} arrays`);
  tensors.forEach((t, i) => {
    const size = tf.util.sizeFromShape(t.shape);
    if (size !== outs[i].length) throw new Error(`readInto: a tensor of ${size} values into ${outs[i].length}`);
  });
}

function isGpuBuffer(x: unknown): x is GPUBuffer {
  return typeof x === 'object' && x !== null && typeof (x as GPUBuffer).mapAsync === 'function';
}

/** One staging buffer for every tensor that lives on the GPU: one copy pass, one submit, one map. */
function startGpuRead(backend: WebGPUBackend, tensors: tf.TensorInfo[]): PendingRead {
  const b = backend as unknown as BackendInternals;
  const onGpu: { index: number; buffer: GPUBuffer; offset: number; length: number }[] = [];
  const elsewhere: { index: number; values: Promise<Float32Array> }[] = [];
  let bytes = 0;
  tensors.forEach((tensor, index) => {
    const data = b.tensorMap.get(tensor.dataId);
    const length = tf.util.sizeFromShape(tensor.shape);
    if (data !== undefined && data.values == null && data.dtype === 'float32' && isGpuBuffer(data.resource) && length > 0) {
      onGpu.push({ index, buffer: data.resource, offset: bytes, length });
      bytes += length * 4;
    } else {
      // Values held on the CPU, or not float32: tfjs's own read.
      elsewhere.push({ index, values: backend.read(tensor.dataId) as Promise<Float32Array> });
    }
  });
  let staging: GPUBuffer | undefined;
  let mapped: Promise<void> = Promise.resolve();
  if (onGpu.length > 0) {
    staging = b.bufferManager.acquireBuffer(bytes, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ);
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    for (const part of onGpu) b.commandEncoder.copyBufferToBuffer(part.buffer, 0, staging, part.offset, part.length * 4);
    b.submitQueue();
    mapped = staging.mapAsync(GPUMapMode.READ, 0, bytes);
  }
  let settled = false;
  const finish = async (use: ((range: Float32Array) => void) | undefined) => {
    if (settled) throw new Error('startRead: the read was already taken');
    settled = true;
    try {
      await mapped;
      if (staging !== undefined) {
        if (use !== undefined) use(new Float32Array(staging.getMappedRange(0, bytes)));
        staging.unmap();
      }
    } finally {
      if (staging !== undefined) b.bufferManager.releaseBuffer(staging);
    }
  };
  return {
    into: async (outs) => {
      try {
        checkLengths(tensors, outs);
      } catch (err) {
        await finish(undefined);
        throw err;
      }
      await finish((range) => {
        for (const part of onGpu) outs[part.index].set(range.subarray(part.offset / 4, part.offset / 4 + part.length));
      });
      for (const e of elsewhere) outs[e.index].set(await e.values);
    },
    discard: async () => {
      await finish(undefined);
      await Promise.allSettled(elsewhere.map((e) => e.values));
    },
  };
}
