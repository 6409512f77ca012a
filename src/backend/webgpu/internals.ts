/**
 * The parts of tfjs's WebGPUBackend (4.22) beyond its public API that this project's readback
 * (../readBack.ts) and uploads (upload.ts) use: its tensor records, buffer pool, command encoder
 * and queue. tfjs's own `read` and `uploadToGPU` use the same members.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

export interface WebgpuTensorData {
  /** The values while they live on the CPU; null once uploaded. */
  values: tf.backend_util.BackendValues | null;
  /** The GPUBuffer once on the GPU. */
  resource?: unknown;
  dtype: tf.DataType;
  shape: number[];
}

export interface WebgpuInternals {
  device: GPUDevice;
  tensorMap: { get(dataId: object): WebgpuTensorData | undefined };
  bufferManager: {
    acquireBuffer(size: number, usage: number): GPUBuffer;
    releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void;
    getNumFreeBuffers(): number;
    freeBuffers: Map<string, GPUBuffer[]>;
    numFreeBuffers: number;
    numBytesAllocated: number;
  };
  commandEncoder: GPUCommandEncoder;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  uploadToGPU(dataId: object): void;
}

export function webgpuInternals(backend: WebGPUBackend): WebgpuInternals {
  return backend as unknown as WebgpuInternals;
}

/**
 * Whether a tensor's GPU data are float32. tfjs casts int32 to float32 without a copy (the data
 * stay int32 and tfjs's programs convert as they read), so a float32 tensor may hold int32 data;
 * this project's programs read float32 only.
 */
export function storedAsFloat32(backend: WebGPUBackend, x: tf.TensorInfo): boolean {
  return x.dtype === 'float32' && webgpuInternals(backend).tensorMap.get(x.dataId)?.dtype === 'float32';
}

/**
 * Destroys the buffers tfjs's pool keeps for reuse (none is bound to a live tensor), returning
 * their bytes. tfjs never gives pooled memory back; a worker whose steps are replayed from a
 * graph's own buffers would hold a step's worth twice. Keys stay (tfjs stops pooling once the map
 * is empty); Dawn frees a buffer only after work already submitted with it completes.
 */
export function releasePooledBuffers(backend: WebGPUBackend): number {
  const pool = webgpuInternals(backend).bufferManager;
  let bytes = 0;
  for (const buffers of pool.freeBuffers.values()) {
    for (const buffer of buffers) {
      bytes += buffer.size;
      buffer.destroy();
    }
    buffers.length = 0;
  }
  pool.numFreeBuffers = 0;
  pool.numBytesAllocated -= bytes;
  return bytes;
}

/** Whether a tensor record's resource is a GPU buffer (not a texture, not absent). */
export function isGpuBuffer(x: unknown): x is GPUBuffer {
  return typeof x === 'object' && x !== null && typeof (x as GPUBuffer).mapAsync === 'function';
}

/** Submits what tfjs has recorded and not yet submitted; tensors disposed since then return
 * their buffers to tfjs's pool. */
export function submitPending(backend: WebGPUBackend): void {
  const b = webgpuInternals(backend);
  b.ensureCommandEncoderReady(); // tfjs's submitQueue finishes its current encoder
  b.endComputePassEncoder();
  b.submitQueue();
}
