/**
 * Direct access to the tfjs wasm backend's heap for kernels this project writes itself: typed
 * views of tensors, tensors that alias part of another tensor's memory (no copy), and the
 * backend's own exported C functions.
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

/** The parts of tfjs-backend-wasm's BackendWasm that these kernels use. */
export interface WasmBackend extends tf.KernelBackend {
  wasm: {
    HEAPU8: Uint8Array;
    /** The module's exports; `memory` is its WebAssembly.Memory. */
    asm: { memory: object };
    _malloc(bytes: number): number;
    _free(pointer: number): void;
    cwrap(name: string, returnType: null | 'number', argTypes: string[]): (...args: unknown[]) => unknown;
    tfjs: { disposeData(id: number): void };
  };
  dataIdMap: { get(dataId: tf.DataId): WasmTensorData; delete(dataId: tf.DataId): void };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  incRef(dataId: tf.DataId): void;
}

/** Byte address of a tensor's data in the wasm memory. */
export function heapAddress(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset;
}

export function wasmId(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).id;
}

/**
 * A tensor over `shape` that aliases `base`'s memory from float `offset` on. Release it with
 * releaseView (never disposeData: that would free the base's memory).
 */
export function heapView(backend: WasmBackend, base: tf.TensorInfo, offset: number, shape: number[]): tf.TensorInfo {
  const { memoryOffset } = backend.dataIdMap.get(base.dataId);
  return backend.makeOutput(shape, 'float32', memoryOffset + 4 * offset);
}

export function releaseView(backend: WasmBackend, view: tf.TensorInfo): void {
  const data = backend.dataIdMap.get(view.dataId);
  // Unregisters the tensor in C (and any XNNPACK operator cached for it) without freeing memory.
  backend.wasm.tfjs.disposeData(data.id);
  backend.dataIdMap.delete(view.dataId);
}

export function shapeBytes(shape: readonly number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

type MatMulFn = (aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number, tA: boolean, tB: boolean, outId: number) => void;
const matMulFns = new WeakMap<object, MatMulFn>();

/**
 * out[m, n] = a[m, k] b[k, n] for row-major float32 tensors (or views) of at least those sizes,
 * through tfjs-backend-wasm's exported BatchMatMul on its XNNPACK path (one matrix pair, no
 * transposes). XNNPACK packs b into an operator cached on b's tensor id until b is disposed,
 * so a right operand shared by several products is packed once.
 */
export function xnnMatMul(backend: WasmBackend, a: tf.TensorInfo, b: tf.TensorInfo, out: tf.TensorInfo, m: number, k: number, n: number): void {
  let fn = matMulFns.get(backend.wasm);
  if (fn === undefined) {
    fn = backend.wasm.cwrap(tf.BatchMatMul, null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']) as MatMulFn;
    matMulFns.set(backend.wasm, fn);
  }
  fn(wasmId(backend, a), shapeBytes([1, m, k]), 3, wasmId(backend, b), shapeBytes([1, k, n]), 3, false, false, wasmId(backend, out));
}
