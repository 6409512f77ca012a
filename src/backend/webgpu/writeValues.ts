/**
 * queue.writeBuffer of a typed array's values. Dawn's Node binding refuses a view of a
 * SharedArrayBuffer ("no overload matched for writeBuffer"), and a worker computing in the
 * coordinator's process is given the coordinator's parameters, which are shared with its update
 * threads: such values are copied into an ordinary buffer first. That buffer is reused (writeBuffer
 * has copied the bytes by the time it returns): the parameters are written every step, one tensor
 * at a time, and fresh arrays for them would be 26 MB a step to allocate for ch64.
 */
let scratch = new ArrayBuffer(0);

export function writeValues(queue: GPUQueue, buffer: GPUBuffer, values: Float32Array | Int32Array): void {
  if (!(values.buffer instanceof SharedArrayBuffer)) {
    queue.writeBuffer(buffer, 0, values.buffer, values.byteOffset, values.byteLength);
    return;
  }
  if (scratch.byteLength < values.byteLength) scratch = new ArrayBuffer(values.byteLength);
  new Uint8Array(scratch, 0, values.byteLength).set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  queue.writeBuffer(buffer, 0, scratch, 0, values.byteLength);
}
