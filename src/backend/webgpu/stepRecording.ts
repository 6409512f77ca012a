/**
 * One eager webgpu training step as tfjs issues it, recorded for stepGraph.ts to replay: every GPU
 * program dispatched (its pipeline, workgroup counts, uniform bytes, and the tensors it binds) and
 * where each tensor's contents came from. A ch64 step is ~1,100 programs, and issuing them through
 * tfjs (its engine, tape, uniforms and bind groups: ~80 us each) is what bounds the step on an
 * H100; a replay issues the same programs with none of that.
 *
 * Recording wraps members of the backend instance while the step runs and puts them back after.
 * What it cannot replay it names in `problem` (a copy or read in the middle of the step, a texture,
 * profiling), and the step is then never replayed.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { UnitKeys, UnitValues, observeUnitTensors } from '../stepInputs';
import { WebgpuInternals, isGpuBuffer, webgpuInternals } from './internals';
import { sameBytes } from '../../util/sameBytes';

/** Where a tensor of the step gets its contents from. */
export type SlotSource =
  | { kind: 'dispatch' } // written by a program of the step
  | { kind: 'input'; name: string } // uploaded from values the caller names (the images, the noise)
  | { kind: 'unit'; values: UnitValues } // uploaded from a function of the unit's timesteps or dropout seed
  | { kind: 'param'; index: number } // a parameter
  | { kind: 'constant'; bytes: Uint8Array } // uploaded from values no input changes (scalars, ones)
  | { kind: 'resident'; buffer: GPUBuffer }; // on the GPU before the step began, not a parameter

export interface Slot {
  id: number;
  /** The size of the GPU buffer tfjs gave it. */
  bytes: number;
  source: SlotSource;
}

export interface RecordedDispatch {
  pipeline: GPUComputePipeline;
  workgroups: [number, number, number];
  uniform: Uint8Array;
  /** Slot ids in binding order: the output, then the inputs (the uniforms come last). */
  slots: number[];
}

export interface StepRecording {
  slots: Slot[];
  dispatches: RecordedDispatch[];
  /** The slots the step's results are read from, in the caller's order. */
  outputs: number[];
}

interface BackendMembers extends WebgpuInternals {
  queue: GPUQueue;
  activeTimers: unknown;
  recordAndSubmit(program: { pipeline: GPUComputePipeline | Promise<GPUComputePipeline>; dispatch: number[]; pixelsOpType?: unknown }, output: tf.TensorInfo, inputs: tf.TensorInfo[], uniforms?: unknown): void;
  read(dataId: object): Promise<unknown>;
  readSync(dataId: object): unknown;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- wraps tfjs's and Dawn's methods whatever their signatures
type Method = (...args: any[]) => any;

/** A copy of uploaded values' bytes, as the GPU buffer holds them; undefined for other types
 * (bool is bytes on the CPU but 32-bit integers on the GPU). */
function bytesOf(values: unknown): Uint8Array | undefined {
  if (!(values instanceof Float32Array || values instanceof Int32Array)) return undefined;
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

export class StepRecorder {
  private readonly b: BackendMembers;
  private readonly slotOf = new Map<object, Slot>();
  private readonly slots: Slot[] = [];
  private readonly dispatches: RecordedDispatch[] = [];
  private readonly named = new Map<object, string>();
  private readonly derived = new Map<object, UnitValues>();
  private readonly restore: Array<() => void> = [];
  private readonly paramIndex: Map<object, number>;
  /** Set while tfjs records a program: its one queue write then is the program's uniforms. */
  private recordingProgram = false;
  private lastUniform: Uint8Array | undefined;
  private stopped = false;
  problem: string | undefined;

  /** Starts recording the backend's work; `params` are the step's parameter tensors, in order. */
  constructor(backend: WebGPUBackend, params: readonly tf.TensorInfo[], private readonly unit: UnitKeys) {
    this.b = webgpuInternals(backend) as BackendMembers;
    this.paramIndex = new Map(params.map((p, i) => [p.dataId, i]));
    const b = this.b;
    const self = this;
    this.wrap(b, 'uploadToGPU', (original) => function (this: BackendMembers, dataId: object) {
      const data = b.tensorMap.get(dataId);
      const values = data !== undefined && data.resource == null ? data.values : null;
      original.call(this, dataId);
      if (values != null) self.uploaded(dataId, values);
    });
    this.wrap(b.queue, 'writeBuffer', (original) => function (this: GPUQueue, buffer: GPUBuffer, offset: number, data: ArrayBuffer | ArrayBufferView, dataOffset = 0, size?: number) {
      if (self.recordingProgram) {
        const view = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
        self.lastUniform = view.slice(dataOffset, size === undefined ? undefined : dataOffset + size);
      }
      return original.call(this, buffer, offset, data, dataOffset, size);
    });
    this.wrap(b, 'recordAndSubmit', (original) => function (this: BackendMembers, program: Parameters<BackendMembers['recordAndSubmit']>[0], output: tf.TensorInfo, inputs: tf.TensorInfo[], uniforms: unknown) {
      if (this.activeTimers != null) self.fail('the step was profiled');
      if (program.pixelsOpType != null) self.fail('a pixels program');
      self.lastUniform = undefined;
      self.recordingProgram = true;
      try {
        original.call(this, program, output, inputs, uniforms);
      } finally {
        self.recordingProgram = false;
      }
      self.dispatched(program, output, inputs);
    });
    this.wrap(b.device, 'createCommandEncoder', (original) => function (this: GPUDevice, descriptor?: GPUCommandEncoderDescriptor) {
      const encoder = original.call(this, descriptor) as GPUCommandEncoder;
      const copy = encoder.copyBufferToBuffer;
      (encoder as unknown as Record<string, Method>).copyBufferToBuffer = function (this: GPUCommandEncoder, ...args: unknown[]) {
        self.fail('a buffer copy');
        return (copy as Method).apply(this, args);
      };
      return encoder;
    });
    // tfjs runs a kernel whose inputs are all small and on the CPU in JavaScript (WEBGPU_CPU_FORWARD):
    // its result would reach the GPU later as an upload a replay could not tell from a constant.
    this.wrap(b, 'shouldExecuteOnCPU', (original) => function (this: BackendMembers, ...args: unknown[]) {
      const onCpu = original.apply(this, args) as boolean;
      if (onCpu) self.fail('a kernel ran on the CPU (WEBGPU_CPU_FORWARD)');
      return onCpu;
    });
    for (const name of ['read', 'readSync'] as const) {
      this.wrap(b, name, (original) => function (this: BackendMembers, dataId: object) {
        self.fail(`a ${name} of a tensor`);
        return original.call(this, dataId);
      });
    }
    observeUnitTensors((tensor, use, values) => {
      if (use.given !== this.unit[use.key]) this.fail(`a tensor of another unit's ${use.key}`);
      this.derived.set(tensor.dataId, values);
    });
    this.restore.push(() => observeUnitTensors(undefined));
  }

  /** The images, the noise: uploads whose values the replay writes afresh. */
  nameInput(tensor: tf.TensorInfo, name: string): void {
    this.named.set(tensor.dataId, name);
  }

  /** Stops recording; `outputs` are the tensors the step's results are read from. */
  stop(outputs: readonly tf.TensorInfo[]): StepRecording | undefined {
    this.end();
    const ids = outputs.map((t) => this.slotFor(t.dataId).id);
    if (this.problem !== undefined) return undefined;
    return { slots: this.slots, dispatches: this.dispatches, outputs: ids };
  }

  /** Puts the backend's members back (idempotent; stop() calls it). */
  end(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const undo of this.restore.reverse()) undo();
  }

  private fail(problem: string): void {
    this.problem ??= problem;
  }

  /** Replaces target[key] until end(): an own property, removed again if it was the prototype's. */
  private wrap(target: object, key: string, make: (original: Method) => Method): void {
    const t = target as Record<string, Method>;
    const had = Object.prototype.hasOwnProperty.call(t, key);
    const own = t[key];
    t[key] = make(own);
    this.restore.push(() => {
      if (had) t[key] = own;
      else delete t[key];
    });
  }

  private newSlot(dataId: object, source: SlotSource): Slot {
    const data = this.b.tensorMap.get(dataId);
    const resource = data?.resource;
    if (!isGpuBuffer(resource)) this.fail('a tensor not in a GPU buffer');
    const slot: Slot = { id: this.slots.length, bytes: isGpuBuffer(resource) ? resource.size : 0, source };
    this.slots.push(slot);
    this.slotOf.set(dataId, slot);
    return slot;
  }

  private uploaded(dataId: object, values: unknown): void {
    const param = this.paramIndex.get(dataId);
    const name = this.named.get(dataId);
    const derived = this.derived.get(dataId);
    if (param !== undefined) this.newSlot(dataId, { kind: 'param', index: param });
    else if (name !== undefined) this.newSlot(dataId, { kind: 'input', name });
    else if (derived !== undefined) this.newSlot(dataId, { kind: 'unit', values: derived });
    else {
      const bytes = bytesOf(values);
      if (bytes === undefined) this.fail('an upload of neither float32 nor int32 values');
      this.newSlot(dataId, { kind: 'constant', bytes: bytes ?? new Uint8Array(0) });
    }
  }

  /** The slot of a tensor the step reads: recorded, a parameter, or one on the GPU before it. */
  private slotFor(dataId: object): Slot {
    const known = this.slotOf.get(dataId);
    if (known !== undefined) return known;
    const param = this.paramIndex.get(dataId);
    if (param !== undefined) return this.newSlot(dataId, { kind: 'param', index: param });
    const resource = this.b.tensorMap.get(dataId)?.resource;
    if (!isGpuBuffer(resource)) this.fail('a tensor read from the CPU');
    return this.newSlot(dataId, { kind: 'resident', buffer: resource as GPUBuffer });
  }

  private dispatched(program: { pipeline: GPUComputePipeline | Promise<GPUComputePipeline>; dispatch: number[] }, output: tf.TensorInfo, inputs: tf.TensorInfo[]): void {
    if (program.pipeline instanceof Promise) this.fail('a pipeline still compiling');
    if (this.lastUniform === undefined) this.fail('a program without uniforms');
    const inputSlots = inputs.map((t) => this.slotFor(t.dataId).id);
    // An output tfjs handed in (written in place) keeps its slot; a new one is this program's.
    const out = this.slotOf.get(output.dataId) ?? this.newSlot(output.dataId, { kind: 'dispatch' });
    this.dispatches.push({
      pipeline: program.pipeline as GPUComputePipeline,
      workgroups: [program.dispatch[0], program.dispatch[1] ?? 1, program.dispatch[2] ?? 1],
      uniform: this.lastUniform ?? new Uint8Array(0),
      slots: [out.id, ...inputSlots],
    });
  }
}

/**
 * Why two recordings of the same step shape (two units of the same size) would not replay alike,
 * or undefined if they are the same programs on the same slots, with the same constants. An
 * upload that changed from one unit to the other without being a named input or a timestep
 * tensor is a value the replay would not update: the step is then not replayed.
 */
export function recordingsDiffer(a: StepRecording, b: StepRecording): string | undefined {
  if (a.dispatches.length !== b.dispatches.length) return `${a.dispatches.length} programs, then ${b.dispatches.length}`;
  if (a.slots.length !== b.slots.length) return `${a.slots.length} tensors, then ${b.slots.length}`;
  for (let i = 0; i < a.dispatches.length; i++) {
    const [p, q] = [a.dispatches[i], b.dispatches[i]];
    if (p.pipeline !== q.pipeline) return `program ${i}: another pipeline`;
    if (p.workgroups.join() !== q.workgroups.join()) return `program ${i}: other workgroup counts`;
    if (!sameBytes(p.uniform, q.uniform)) return `program ${i}: other uniforms`;
    if (p.slots.join() !== q.slots.join()) return `program ${i}: other tensors bound`;
  }
  for (let i = 0; i < a.slots.length; i++) {
    const [s, t] = [a.slots[i].source, b.slots[i].source];
    if (s.kind !== t.kind || a.slots[i].bytes !== b.slots[i].bytes) return `tensor ${i}: ${s.kind}, then ${t.kind}`;
    if (s.kind === 'constant' && t.kind === 'constant' && !sameBytes(s.bytes, t.bytes)) return `tensor ${i}: an upload that changed with the unit`;
    if (s.kind === 'param' && t.kind === 'param' && s.index !== t.index) return `tensor ${i}: another parameter`;
    if (s.kind === 'input' && t.kind === 'input' && s.name !== t.name) return `tensor ${i}: another input`;
  }
  if (a.outputs.join() !== b.outputs.join()) return 'other output tensors';
  return undefined;
}
