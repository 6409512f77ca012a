/**
 * A recorded webgpu step (stepRecording.ts) replayed without tfjs: the same pipelines, workgroup
 * counts and uniforms, on buffers of its own, with bind groups made once. A replay writes the
 * step's inputs (images, noise, tensors made from the unit's timesteps and dropout seed, and the parameters when they changed), encodes
 * ~1,100 dispatches with three calls each, and reads the results back in one copy and one map.
 *
 * Buffers: the inputs, parameters, constants, tensors resident before the step, and the results
 * each keep a buffer; the step's other tensors share buffers of the same size once the last
 * program reading one has been issued (the programs run in order on one queue, as tfjs's pool
 * reuses its buffers), so the graph needs about the step's peak memory.
 */
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { submitPending, webgpuInternals } from './internals';
import type { StepRecording } from './stepRecording';
import { writeValues } from './writeValues';
import type { UnitKeys } from '../stepInputs';

/** Values for one replay, in the order the recording's slots name them. */
export interface ReplayInputs {
  /** The named inputs' values (the images, the noise). */
  named: ReadonlyMap<string, Float32Array>;
  /** The unit's timesteps and dropout seed, for the tensors made from them. */
  unit: UnitKeys;
  /** Each parameter's values, by the index the recording gives it: written when this array is
   * not the one the last replay wrote (the computer makes a new one for each setParams). */
  params: readonly Float32Array[];
}

interface Encoded {
  bindGroup: GPUBindGroup;
  pipeline: GPUComputePipeline;
  workgroups: [number, number, number];
}

export class StepGraph {
  private readonly device: GPUDevice;
  private readonly buffers: GPUBuffer[];
  private readonly encoded: Encoded[];
  private readonly owned: GPUBuffer[] = [];
  private readonly staging: GPUBuffer;
  private readonly outputBytes: number[];
  private writtenParams: readonly Float32Array[] | undefined;
  private busy = false;
  private disposed = false;

  constructor(backend: WebGPUBackend, private readonly recording: StepRecording, private readonly submitEvery: () => number) {
    const b = webgpuInternals(backend);
    this.device = b.device;
    const { slots, dispatches, outputs } = recording;
    const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const make = (size: number, usage: number) => {
      const buffer = this.device.createBuffer({ size: Math.max(4, Math.ceil(size / 4) * 4), usage });
      this.owned.push(buffer);
      return buffer;
    };

    // The last program that reads each slot; results and what is not written by a program are kept.
    const lastUse = new Array<number>(slots.length).fill(-1);
    dispatches.forEach((d, i) => d.slots.forEach((s) => { lastUse[s] = i; }));
    const kept = new Set<number>(outputs);
    for (const s of slots) if (s.source.kind !== 'dispatch') kept.add(s.id);
    const buffers = new Array<GPUBuffer | undefined>(slots.length);
    for (const id of kept) buffers[id] = make(slots[id].bytes, STORAGE);
    const free = new Map<number, GPUBuffer[]>();
    const freeOfSize = (size: number) => free.get(size) ?? (free.set(size, []).get(size) as GPUBuffer[]);
    dispatches.forEach((d, i) => {
      const out = d.slots[0];
      buffers[out] ??= freeOfSize(slots[out].bytes).pop() ?? make(slots[out].bytes, STORAGE);
      // What no later program reads gives its buffer back (kept slots never do).
      for (const s of new Set(d.slots)) if (lastUse[s] === i && !kept.has(s)) freeOfSize(slots[s].bytes).push(buffers[s] as GPUBuffer);
    });
    this.buffers = buffers.map((buffer, id) => buffer ?? make(slots[id].bytes, STORAGE));

    // Uniforms, written once: each program's at an offset the device allows a binding to start at.
    const align = this.device.limits.minUniformBufferOffsetAlignment;
    const offsets: number[] = [];
    let arenaBytes = 0;
    for (const d of dispatches) {
      offsets.push(arenaBytes);
      arenaBytes += Math.ceil(Math.max(d.uniform.length, 4) / align) * align;
    }
    const arena = make(arenaBytes, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const arenaData = new Uint8Array(arenaBytes);
    dispatches.forEach((d, i) => arenaData.set(d.uniform, offsets[i]));
    this.device.queue.writeBuffer(arena, 0, arenaData);

    this.encoded = dispatches.map((d, i) => ({
      pipeline: d.pipeline,
      workgroups: d.workgroups,
      bindGroup: this.device.createBindGroup({
        layout: d.pipeline.getBindGroupLayout(0),
        entries: [
          ...d.slots.map((s, binding) => ({ binding, resource: { buffer: this.buffers[s] } })),
          { binding: d.slots.length, resource: { buffer: arena, offset: offsets[i], size: Math.max(d.uniform.length, 4) } },
        ],
      }),
    }));

    // Constants once; what was on the GPU before the step, copied from tfjs's buffer now (tensors
    // do not change, and the copy no longer depends on tfjs keeping it).
    const encoder = this.device.createCommandEncoder();
    for (const s of slots) {
      if (s.source.kind === 'constant') this.device.queue.writeBuffer(this.buffers[s.id], 0, s.source.bytes);
      if (s.source.kind === 'resident') encoder.copyBufferToBuffer(s.source.buffer, 0, this.buffers[s.id], 0, Math.min(s.bytes, s.source.buffer.size));
    }
    submitPending(backend); // tfjs's pending work first: it may still be writing those buffers
    this.device.queue.submit([encoder.finish()]);

    this.outputBytes = outputs.map((id) => slots[id].bytes);
    this.staging = make(this.outputBytes.reduce((a, n) => a + n, 0), GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ);
  }

  /** Programs per replay. */
  get programs(): number {
    return this.encoded.length;
  }

  /** GPU memory the graph holds. */
  get bytes(): number {
    return this.owned.reduce((total, buffer) => total + buffer.size, 0);
  }

  /**
   * Writes the inputs, issues the step and resolves once `issued` has been called and every
   * output's values are in its target (`targets[i]` receives output i, in float32).
   */
  async run(inputs: ReplayInputs, targets: Float32Array[], issued: () => void = () => undefined): Promise<void> {
    if (this.disposed) throw new Error('step graph: run after dispose');
    if (this.busy) throw new Error('step graph: run while a run is in flight');
    this.busy = true;
    try {
      this.writeInputs(inputs);
      const queue = this.device.queue;
      const every = Math.max(1, this.submitEvery());
      let encoder = this.device.createCommandEncoder();
      let pass = encoder.beginComputePass();
      this.encoded.forEach((d, i) => {
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, d.bindGroup);
        pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        if ((i + 1) % every === 0 && i + 1 < this.encoded.length) {
          pass.end();
          queue.submit([encoder.finish()]);
          encoder = this.device.createCommandEncoder();
          pass = encoder.beginComputePass();
        }
      });
      pass.end();
      issued(); // as for tfjs's steps: the last batch of programs is submitted with the readback
      let offset = 0;
      this.recording.outputs.forEach((id, i) => {
        encoder.copyBufferToBuffer(this.buffers[id], 0, this.staging, offset, this.outputBytes[i]);
        offset += this.outputBytes[i];
      });
      queue.submit([encoder.finish()]);
      await this.staging.mapAsync(GPUMapMode.READ);
      try {
        const mapped = new Float32Array(this.staging.getMappedRange());
        let at = 0;
        targets.forEach((target, i) => {
          target.set(mapped.subarray(at, at + target.length));
          at += this.outputBytes[i] / 4;
        });
      } finally {
        this.staging.unmap();
      }
    } finally {
      this.busy = false;
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const buffer of this.owned) buffer.destroy();
  }

  private writeInputs(inputs: ReplayInputs): void {
    const queue = this.device.queue;
    const write = (id: number, values: Float32Array | Int32Array) => {
      if (values.byteLength > this.recording.slots[id].bytes) throw new Error(`step graph: ${values.length} values for a tensor of ${this.recording.slots[id].bytes} bytes`);
      writeValues(queue, this.buffers[id], values);
    };
    const writeParams = inputs.params !== this.writtenParams;
    for (const slot of this.recording.slots) {
      const source = slot.source;
      if (source.kind === 'input') {
        const values = inputs.named.get(source.name);
        if (values === undefined) throw new Error(`step graph: no values for input "${source.name}"`);
        write(slot.id, values);
      } else if (source.kind === 'unit') {
        write(slot.id, source.values(inputs.unit));
      } else if (source.kind === 'param' && writeParams) {
        write(slot.id, inputs.params[source.index]);
      }
    }
    this.writtenParams = inputs.params;
  }
}
