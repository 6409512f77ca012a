/**
 * Multipart messages: frame 0 is a protobuf Envelope, frames 1..n the raw tensors its table
 * describes. decodeMessage validates the envelope against the frames before anything is used.
 */
import { ddpm } from './generated/ddpm';
import { DType, bytesPerElement } from './dtypes';

/** 2: WELCOME carries the objective: prediction target and Min-SNR weighting. 3: a class-conditional
 * model's WORK carries labels, which a version-2 worker would not read (proto/README.md). */
export const PROTOCOL_VERSION = 3;
export const Kind = ddpm.v1.Kind;
export type Kind = ddpm.v1.Kind;
export type Envelope = ddpm.v1.Envelope;
export type EnvelopeProps = ddpm.v1.Envelope.$Properties;
export const ErrorCode = ddpm.v1.Error.Code;

/** Upper bounds that keep a hostile peer from making the decoder allocate or loop without limit. */
export const LIMITS = { maxFrames: 16, maxEnvelopeBytes: 64 * 1024, maxTensorRank: 8, maxStringBytes: 1 << 16 };

export class ProtocolError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export interface Tensor {
  dtype: DType;
  shape: number[];
  bytes: Uint8Array;
}

export interface Message {
  envelope: Envelope;
  tensors: Map<string, Tensor>;
  bytes: number;
}

export interface OutgoingTensor {
  name: string;
  dtype: DType;
  shape: number[];
  bytes: Uint8Array;
}

export function encodeMessage(props: EnvelopeProps, tensors: OutgoingTensor[] = []): Buffer[] {
  const envelope: EnvelopeProps = {
    ...props,
    protocolVersion: PROTOCOL_VERSION,
    tensors: tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.bytes.byteLength })),
  };
  const head = Buffer.from(ddpm.v1.Envelope.encode(envelope).finish());
  return [head, ...tensors.map((t) => Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength))];
}

const BODY_OF_KIND: Record<number, string> = {
  [Kind.REGISTER]: 'register', [Kind.WELCOME]: 'welcome', [Kind.PARAMETERS]: 'parameters', [Kind.WORK]: 'work',
  [Kind.RESULT]: 'result', [Kind.HEARTBEAT]: 'heartbeat', [Kind.GOODBYE]: 'goodbye', [Kind.ERROR]: 'error',
};

export function decodeMessage(frames: Uint8Array[]): Message {
  if (frames.length === 0) throw new ProtocolError('empty', 'message has no frames');
  if (frames.length > LIMITS.maxFrames) throw new ProtocolError('too_many_frames', `message has ${frames.length} frames (max ${LIMITS.maxFrames})`);
  if (frames[0].byteLength > LIMITS.maxEnvelopeBytes) throw new ProtocolError('oversized', `envelope of ${frames[0].byteLength} bytes`);
  let envelope: Envelope;
  try {
    envelope = ddpm.v1.Envelope.decode(frames[0]);
  } catch (err) {
    throw new ProtocolError('malformed', `envelope does not decode: ${(err as Error).message}`);
  }
  if (envelope.protocolVersion !== PROTOCOL_VERSION) {
    throw new ProtocolError('protocol_version', `protocol version ${envelope.protocolVersion}, expected ${PROTOCOL_VERSION}`);
  }
  const body = BODY_OF_KIND[envelope.kind];
  if (body === undefined) throw new ProtocolError('unknown_kind', `unknown message kind ${envelope.kind}`);
  if (envelope.body !== body) throw new ProtocolError('malformed', `kind ${Kind[envelope.kind]} with body ${envelope.body ?? 'none'}`);
  if (envelope.tensors.length !== frames.length - 1) {
    throw new ProtocolError('frame_count', `envelope lists ${envelope.tensors.length} tensors but ${frames.length - 1} frames follow`);
  }
  // A plain Map: tensor names such as "__proto__" cannot reach any object's prototype.
  const tensors = new Map<string, Tensor>();
  let bytes = frames[0].byteLength;
  envelope.tensors.forEach((info, i) => {
    const frame = frames[i + 1];
    const name = info.name ?? '';
    const dtype = info.dtype ?? DType.DTYPE_UNSPECIFIED;
    const size = bytesPerElement(dtype);
    if (size === 0) throw new ProtocolError('dtype', `tensor "${name}": unknown dtype ${dtype}`);
    const shape = (info.shape ?? []).map(Number);
    if (shape.length > LIMITS.maxTensorRank) throw new ProtocolError('shape', `tensor "${name}": rank ${shape.length}`);
    const elements = shape.reduce((a, b) => a * b, 1);
    if (Number(info.byteLength) !== frame.byteLength || elements * size !== frame.byteLength) {
      throw new ProtocolError('tensor_size', `tensor "${name}": shape [${shape}] of ${size}-byte elements needs ${elements * size} bytes; table says ${info.byteLength}, frame has ${frame.byteLength}`);
    }
    if (tensors.has(name)) throw new ProtocolError('malformed', `tensor "${name}" appears twice`);
    tensors.set(name, { dtype, shape, bytes: frame });
    bytes += frame.byteLength;
  });
  return { envelope, tensors, bytes };
}

/** The tensor of a given name, dtype and shape, or a ProtocolError saying what differs. */
export function expectTensor(m: Message, name: string, dtypes: DType[], shape: number[]): Tensor {
  const t = m.tensors.get(name);
  if (t === undefined) throw new ProtocolError('missing_tensor', `${Kind[m.envelope.kind]} without tensor "${name}"`);
  if (!dtypes.includes(t.dtype)) throw new ProtocolError('dtype', `tensor "${name}" has dtype ${DType[t.dtype]}, expected ${dtypes.map((d) => DType[d]).join('|')}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ProtocolError('shape', `tensor "${name}" has shape [${t.shape}], expected [${shape}]`);
  }
  return t;
}
