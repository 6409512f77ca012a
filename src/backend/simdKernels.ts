/**
 * The project's WebAssembly SIMD kernels (src/backend/simd/kernels.c, prebuilt into
 * simd/kernelsWasm.ts), instantiated on tfjs-backend-wasm's own memory so that they read and
 * write tensors in place. One instance per wasm backend.
 */
import { KERNELS_WASM_BASE64 } from './simd/kernelsWasm';
import { WasmBackend } from './wasmHeap';

export interface SimdKernels {
  gn_forward(x: number, gamma: number, beta: number, n: number, hw: number, c: number, groups: number, eps: number, swish: number, y: number, mean: number, rstd: number, scratch: number): void;
  gn_backward(dy: number, x: number, gamma: number, beta: number, mean: number, rstd: number, n: number, hw: number, c: number, groups: number, swish: number,
    dx: number, dgamma: number, dbeta: number, scratch: number): void;
  swish_forward(x: number, len: number, y: number): void;
  swish_backward(dy: number, x: number, len: number, dx: number): void;
  sum_rows(x: number, rows: number, cols: number, out: number, scratch: number): void;
  conv_filter_grad(x: number, dy: number, n: number, h: number, w: number, c: number, oh: number, ow: number, o: number,
    kh: number, kw: number, sh: number, sw: number, pt: number, pl: number, chunk: number, dw: number): void;
  pad_dilate(x: number, n: number, h: number, w: number, c: number, dh: number, dw: number, top: number, left: number, hp: number, wp: number, out: number): void;
  conv_valid(x: number, n: number, h: number, w: number, c: number, wt: number, kh: number, kw: number, o: number, sh: number, sw: number,
    bias: number, oh: number, ow: number, y: number): void;
}

// tsconfig's lib has no WebAssembly types (no DOM lib); the two constructors used here.
const WA = (globalThis as unknown as {
  WebAssembly: { Module: new (bytes: Uint8Array) => object; Instance: new (module: object, imports: object) => { exports: unknown } };
}).WebAssembly;

let compiled: object | undefined;
const instances = new WeakMap<object, SimdKernels | null>();

/** The kernels on this backend's memory, or undefined where the engine cannot run them (no wasm
 * SIMD): callers then use their JavaScript or tfjs fallbacks. */
export function simdKernels(backend: WasmBackend): SimdKernels | undefined {
  let k = instances.get(backend.wasm);
  if (k === undefined) {
    try {
      compiled ??= new WA.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
      k = new WA.Instance(compiled, { env: { memory: backend.wasm.asm.memory } }).exports as unknown as SimdKernels;
    } catch {
      k = null;
    }
    instances.set(backend.wasm, k);
  }
  return k ?? undefined;
}

/** Runs f with `bytes` of scratch memory on the wasm heap (16-byte aligned), freed afterwards. */
export function withScratch<T>(backend: WasmBackend, bytes: number, f: (pointer: number) => T): T {
  const pointer = backend.wasm._malloc(Math.max(bytes, 16));
  try {
    return f(pointer);
  } finally {
    backend.wasm._free(pointer);
  }
}
