/**
 * When a worker's webgpu steps are replayed (stepGraph.ts) instead of issued through tfjs. For each
 * unit size: the first two steps run through tfjs and are recorded; if the two recordings are the
 * same programs with the same constants (what changed between the units came only through the
 * named inputs, the tensors made from the unit's timesteps and dropout seed, and the parameters),
 * the second is built into a graph and replayed on the second unit, and only if that replay gives
 * tfjs's bits exactly are later units of that size replayed. Otherwise that size stays with tfjs,
 * and `describe()` says why.
 *
 * DDPM_WEBGPU_REPLAY=off keeps every step in tfjs (benchmarks compare the two).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { StepGraph } from './stepGraph';
import { webgpuKernelChoiceFromEnv } from './register';
import { releasePooledBuffers, submitPending, webgpuInternals } from './internals';
import { StepRecorder, StepRecording, recordingsDiffer } from './stepRecording';
import type { UnitKeys } from '../stepInputs';

/** Unit sizes learnt at most: a worker sees one or two (the last unit of a batch may be smaller). */
const MAX_SIZES = 4;

interface SizeState {
  first?: StepRecording;
  graph?: StepGraph;
  off?: string;
}

export class StepReplay {
  private readonly sizes = new Map<number, SizeState>();

  constructor(private readonly backend: WebGPUBackend) {}

  /**
   * A StepReplay on webgpu, unless DDPM_WEBGPU_REPLAY=off (a bad value throws one line) or
   * DDPM_WEBGPU_KERNELS=tfjs (tfjs's own kernels and settings, the benchmarks' baseline).
   */
  static forBackend(env: NodeJS.ProcessEnv = process.env): StepReplay | undefined {
    if (tf.getBackend() !== 'webgpu') return undefined;
    const choice = webgpuKernelChoiceFromEnv(env);
    if (choice.replay === 'off' || choice.kernels === 'tfjs') return undefined;
    return new StepReplay(tf.backend() as unknown as WebGPUBackend);
  }

  /** The graph that replays units of this size, once learnt. */
  graph(count: number): StepGraph | undefined {
    return this.sizes.get(count)?.graph;
  }

  /** A recorder for an eager step of this size while it is still being learnt, else undefined. */
  recorder(count: number, params: readonly tf.TensorInfo[], unit: UnitKeys): StepRecorder | undefined {
    const state = this.sizes.get(count);
    if (state === undefined && this.sizes.size >= MAX_SIZES) return undefined;
    if (state?.off !== undefined || state?.graph !== undefined) return undefined;
    return new StepRecorder(this.backend, params, unit);
  }

  /**
   * Takes what a recorded eager step gave. `replayMatches` replays a graph on that same step's
   * unit and parameters and says whether every result bit equals the eager step's.
   */
  async learn(count: number, recording: StepRecording | undefined, problem: string | undefined, replayMatches: (graph: StepGraph) => Promise<boolean>): Promise<void> {
    const state = this.sizes.get(count) ?? {};
    this.sizes.set(count, state);
    if (recording === undefined) {
      state.off = problem ?? 'not recorded';
      state.first = undefined;
      return;
    }
    if (state.first === undefined) {
      state.first = recording;
      return;
    }
    const differ = recordingsDiffer(state.first, recording);
    state.first = undefined;
    if (differ !== undefined) {
      state.off = `two steps differed: ${differ}`;
      return;
    }
    // tfjs's pooled buffers go first (tfjs never gives them back; the graph has buffers of its
    // own), so that the GPU never holds both: a step that fits through tfjs fits replayed.
    submitPending(this.backend); // returns the step's disposed tensors' buffers to the pool
    releasePooledBuffers(this.backend);
    const { device } = webgpuInternals(this.backend);
    device.pushErrorScope('out-of-memory');
    const graph = new StepGraph(this.backend, recording, () => tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE'));
    const outOfMemory = await device.popErrorScope();
    if (outOfMemory !== null) {
      graph.dispose();
      state.off = `no GPU memory for the graph (${outOfMemory.message})`;
    } else if (await replayMatches(graph)) {
      state.graph = graph;
    } else {
      graph.dispose();
      state.off = 'a replay gave other bits than tfjs';
    }
  }

  /** One line: which unit sizes are replayed, which are not and why. */
  describe(): string {
    const parts = [...this.sizes.entries()].map(([count, s]) =>
      s.graph !== undefined ? `${count}: replayed (${s.graph.programs} programs, ${(s.graph.bytes / 2 ** 20).toFixed(0)} MiB)` : s.off !== undefined ? `${count}: tfjs (${s.off})` : `${count}: learning`);
    return parts.length === 0 ? 'no steps yet' : parts.join('; ');
  }

  dispose(): void {
    for (const s of this.sizes.values()) s.graph?.dispose();
    this.sizes.clear();
  }
}
