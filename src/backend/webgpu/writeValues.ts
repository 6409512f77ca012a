/**
 * queue.writeBuffer of a typed array's values. Dawn's Node binding refuses a view of a
 * SharedArrayBuffer ("no overload matched for writeBuffer"), and a worker computing in the
 * coordinator's process is given the coordinator's parameters, which are shared with its update
 * threads: such values are copied into an ordinary buffer first.
 */
export function writeValues(queue: GPUQueue, buffer: GPUBuffer, values: Float32Array | Int32Array): void {
  const plain = values.buffer instanceof SharedArrayBuffer ? values.slice() : values;
  queue.writeBuffer(buffer, 0, plain.buffer, plain.byteOffset, plain.byteLength);
}
