/** GPU programs dispatched while f runs, by program class (benchmarks, tests); none off webgpu. */
import * as tf from '@tensorflow/tfjs-core';

export async function countDispatches<T>(f: () => Promise<T>): Promise<{ result: T; dispatches?: Record<string, number> }> {
  const backend = tf.backend() as unknown as { runWebGPUProgram?: (program: object, ...rest: unknown[]) => unknown };
  const original = backend.runWebGPUProgram;
  if (original === undefined) return { result: await f() };
  const dispatches: Record<string, number> = {};
  backend.runWebGPUProgram = function (program: object, ...rest: unknown[]) {
    const name = program.constructor.name;
    dispatches[name] = (dispatches[name] ?? 0) + 1;
    return original.call(this, program, ...rest);
  };
  try {
    return { result: await f(), dispatches };
  } finally {
    backend.runWebGPUProgram = original;
  }
}
