/**
 * Uploads through `queue.writeBuffer` into a pooled buffer. tfjs's webgpu backend uploads a
 * tensor's CPU values (a worker's images and noise, the per-example coefficients, scalars) through
 * a fresh staging buffer mapped at creation, copied from and destroyed: a host-visible allocation
 * each time, ~17 per ch64 step, and Dawn's buffer creation was ~11 ms of such a step's host time on
 * an H100 host (V8 CPU profile), in a step bound by that host time. writeBuffer copies through
 * Dawn's own reused staging memory instead.
 *
 * Ordering: writeBuffer runs on the queue before any command buffer submitted after it, and tfjs
 * records the program that reads the tensor only after this upload. A buffer from tfjs's pool is
 * used by no command still unsubmitted: tfjs returns a tensor's buffer to the pool only after the
 * submit of commands that used it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { WebgpuInternals } from './internals';
import { writeValues } from './writeValues';

/** tfjs keeps int32 and bool as 32-bit integers on the GPU. */
function gpuValues(values: tf.backend_util.BackendValues, dtype: tf.DataType): Float32Array | Int32Array | undefined {
  if (dtype === 'float32') return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  if (dtype === 'int32' || dtype === 'bool') return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
  return undefined;
}

/** Replaces WebGPUBackend's uploadToGPU (on its prototype, for every instance). Idempotent. */
export function installWriteBufferUpload(backendClass: { prototype: WebGPUBackend }): void {
  const proto = backendClass.prototype as unknown as WebgpuInternals & { __ddpmWriteBufferUpload?: boolean };
  if (proto.__ddpmWriteBufferUpload) return;
  proto.__ddpmWriteBufferUpload = true;
  const tfjsUpload = proto.uploadToGPU;
  proto.uploadToGPU = function uploadToGPU(this: WebgpuInternals, dataId: object): void {
    const data = this.tensorMap.get(dataId);
    const values = data !== undefined && data.resource == null && data.values != null ? gpuValues(data.values, data.dtype) : undefined;
    if (data === undefined || values === undefined || values.length === 0) {
      tfjsUpload.call(this, dataId); // on the GPU already, complex, string or empty: tfjs's own path
      return;
    }
    const bytes = values.length * 4;
    const buffer = this.bufferManager.acquireBuffer(bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    writeValues(this.device.queue, buffer, values);
    data.resource = buffer;
    data.values = null; // as tfjs: once uploaded, the values live on the GPU only
  };
}
