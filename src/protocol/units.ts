/** WORK, RESULT and PARAMETERS messages <-> the training types, with validation of every field. */
import { DType, bytesOf, bytesPerElement, decodeFiniteFloats, encodeFloats, int32View, uint32View } from './dtypes';
import { Kind, Message, ProtocolError, encodeMessage, expectTensor } from './messages';
import { LOSS_BUCKETS, UnitResult, WorkUnit } from '../training/workUnit';
import { type UNetConfig, classCount } from '../model/config';

export interface Stamp {
  runId: string;
  step: number;
  paramVersion: number;
}

export function encodeWork(unit: WorkUnit, stamp: Stamp, deadlineMs: number, image: [number, number, number]): Buffer[] {
  return encodeMessage(
    { kind: Kind.WORK, runId: stamp.runId, step: stamp.step, paramVersion: stamp.paramVersion, unitIds: [unit.unitId], work: { count: unit.count, dropoutSeed: unit.dropoutSeed, deadlineMs } },
    [
      { name: 'pixels', dtype: DType.UINT8, shape: [unit.count, ...image], bytes: unit.pixels },
      { name: 'timesteps', dtype: DType.INT32, shape: [unit.count], bytes: bytesOf(unit.timesteps) },
      { name: 'noise_seeds', dtype: DType.UINT32, shape: [unit.count], bytes: bytesOf(unit.noiseSeeds) },
      { name: 'flips', dtype: DType.UINT8, shape: [unit.count], bytes: unit.flips },
      ...(unit.labels ? [{ name: 'labels', dtype: DType.UINT8, shape: [unit.count], bytes: unit.labels }] : []),
    ],
  );
}

export function decodeWork(m: Message, model: UNetConfig, timesteps: number): WorkUnit {
  const e = m.envelope;
  const w = e.work;
  if (!w || e.unitIds.length !== 1) throw new ProtocolError('malformed', 'WORK must carry one unit id and a work body');
  const count = w.count ?? 0;
  if (!(count >= 1)) throw new ProtocolError('malformed', `WORK count ${count}`);
  const pixels = expectTensor(m, 'pixels', [DType.UINT8], [count, model.imageSize, model.imageSize, model.imageChannels]);
  const ts = int32View(expectTensor(m, 'timesteps', [DType.INT32], [count]).bytes);
  for (const t of ts) if (t < 0 || t >= timesteps) throw new ProtocolError('malformed', `timestep ${t} outside [0, ${timesteps})`);
  const classes = classCount(model);
  let labels: Uint8Array | undefined;
  if (classes > 0) {
    labels = expectTensor(m, 'labels', [DType.UINT8], [count]).bytes;
    for (const l of labels) if (l > classes) throw new ProtocolError('malformed', `label ${l} outside [0, ${classes}] (${classes}: no class)`);
  } else if (m.tensors.has('labels')) {
    throw new ProtocolError('malformed', 'WORK has labels but the model is unconditional');
  }
  return {
    step: e.step, unitId: e.unitIds[0], count, pixels: pixels.bytes, timesteps: ts,
    noiseSeeds: uint32View(expectTensor(m, 'noise_seeds', [DType.UINT32], [count]).bytes),
    flips: expectTensor(m, 'flips', [DType.UINT8], [count]).bytes,
    dropoutSeed: w.dropoutSeed ?? 0,
    ...(labels && { labels }),
  };
}

export function encodeResult(r: UnitResult, runId: string, dtype: DType): Buffer[] {
  return encodeMessage(
    {
      kind: Kind.RESULT, runId, step: r.step, paramVersion: r.paramVersion, unitIds: [r.unitId],
      result: { count: r.count, lossSum: r.lossSum, lossByBucket: Array.from(r.lossByBucket), countByBucket: Array.from(r.countByBucket), computeSeconds: r.computeSeconds },
    },
    [{ name: 'grad', dtype, shape: [r.gradSum.length], bytes: encodeFloats(r.gradSum, dtype) }],
  );
}

export function decodeResult(m: Message, parameterCount: number, dtype: DType): UnitResult {
  const e = m.envelope;
  const r = e.result;
  if (!r || e.unitIds.length !== 1) throw new ProtocolError('malformed', 'RESULT must carry one unit id and a result body');
  const count = r.count ?? 0;
  const lossSum = r.lossSum ?? NaN;
  const lossByBucket = r.lossByBucket ?? [];
  const countByBucket = r.countByBucket ?? [];
  if (!(count >= 1)) throw new ProtocolError('malformed', `RESULT count ${count}`);
  if (lossByBucket.length !== LOSS_BUCKETS || countByBucket.length !== LOSS_BUCKETS) {
    throw new ProtocolError('malformed', `RESULT must have ${LOSS_BUCKETS} loss buckets`);
  }
  if (!Number.isFinite(lossSum) || !lossByBucket.every(Number.isFinite)) throw new ProtocolError('non_finite', 'RESULT loss is not finite');
  const gradSum = decodeFiniteFloats(expectTensor(m, 'grad', [dtype], [parameterCount]).bytes, dtype);
  if (gradSum === undefined) throw new ProtocolError('non_finite', 'RESULT gradient has NaN or Inf values');
  return {
    step: e.step, unitId: e.unitIds[0], paramVersion: e.paramVersion, count, lossSum,
    lossByBucket: Float64Array.from(lossByBucket), countByBucket: Float64Array.from(countByBucket), gradSum,
    computeSeconds: Number.isFinite(r.computeSeconds) ? Number(r.computeSeconds) : 0,
  };
}

/** `encoded`: the parameters already in `dtype` (encodeFloatsRange), in a buffer nothing will
 * write again, sent as it is; else they are encoded here. */
export function encodeParameters(params: Float32Array, stamp: Stamp, dtype: DType, encoded?: Uint8Array): Buffer[] {
  if (encoded !== undefined && encoded.byteLength !== params.length * bytesPerElement(dtype)) {
    throw new RangeError(`encoded parameters: ${encoded.byteLength} bytes for ${params.length} ${DType[dtype]} values`);
  }
  return encodeMessage(
    { kind: Kind.PARAMETERS, runId: stamp.runId, step: stamp.step, paramVersion: stamp.paramVersion, parameters: {} },
    // Otherwise a copy: the coordinator updates its parameters in place while ZeroMQ may still hold the frame.
    [{ name: 'params', dtype, shape: [params.length], bytes: encoded !== undefined ? bytesOf(encoded) : dtype === DType.FLOAT32 ? Buffer.from(bytesOf(params)) : encodeFloats(params, dtype) }],
  );
}

export function decodeParameters(m: Message, parameterCount: number, dtype: DType): Float32Array {
  const values = decodeFiniteFloats(expectTensor(m, 'params', [dtype], [parameterCount]).bytes, dtype);
  if (values === undefined) throw new ProtocolError('non_finite', 'PARAMETERS contain NaN or Inf values');
  return values;
}
