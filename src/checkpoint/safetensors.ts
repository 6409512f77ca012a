/**
 * The safetensors format (Hugging Face): an unsigned 64-bit little-endian header length N, N bytes
 * of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
 * then the tensors' bytes, little-endian, at those offsets. PyTorch, diffusers and the Python
 * `safetensors` package read it; scripts/torch/ddpm_unet.py reads it with the standard library.
 * Only float32 tensors are written or read here.
 */
import { paramSize } from '../model/paramSpecs';
import type { TorchTensor } from '../model/torchLayout';

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

export interface SafetensorsFile {
  tensors: TorchTensor[];
  metadata: Record<string, string>;
}

const HEADER_LIMIT = 100 * 1024 * 1024; // the reference implementation's own limit

export function encodeSafetensors({ tensors, metadata }: SafetensorsFile): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    if (t.name in header) throw new RangeError(`tensor name ${t.name} appears twice`);
    const bytes = t.data.length * 4;
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // Padded with spaces to a multiple of 8 bytes, so that the data starts aligned (as the
  // reference writer does): readers may then view float32 data in place.
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    // Little-endian on every platform, whatever the host's order.
    for (let i = 0; i < t.data.length; i++, at += 4) out.writeFloatLE(t.data[i], at);
  }
  return out;
}

interface TensorEntry {
  name: string;
  shape: number[];
  /** Byte offset of its data in the file. */
  at: number;
}

/** The header, checked: every tensor F32 with a shape and offsets that hold it within the file. */
function parseHeader(buf: Buffer): { metadata: Record<string, string>; entries: TensorEntry[] } {
  if (buf.length < 8) throw new SafetensorsError(`${buf.length} bytes is too short for a safetensors header`);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(Math.min(HEADER_LIMIT, buf.length - 8))) throw new SafetensorsError(`header length ${n} does not fit in ${buf.length} bytes`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + Number(n)).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new SafetensorsError('header is not JSON');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new SafetensorsError('header is not a JSON object');
  const dataStart = 8 + Number(n);
  const dataLength = buf.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      for (const [k, v] of Object.entries((entry ?? {}) as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(`metadata ${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e?.dtype !== 'F32') throw new SafetensorsError(`tensor ${name}: dtype ${String(e?.dtype)}, only F32 is read`);
    const shape = e.shape;
    const offsets = e.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(`tensor ${name}: bad shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) throw new SafetensorsError(`tensor ${name}: bad data_offsets`);
    const [begin, end] = offsets as number[];
    if (end - begin !== paramSize(shape as number[]) * 4 || end > dataLength) throw new SafetensorsError(`tensor ${name}: data_offsets [${begin}, ${end}] do not hold shape [${shape}] within the file`);
    entries.push({ name, shape: shape as number[], at: dataStart + begin });
  }
  return { metadata, entries };
}

const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Parses a safetensors file of float32 tensors; any inconsistency is a SafetensorsError naming it. */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  const buf = asBuffer(bytes);
  const { metadata, entries } = parseHeader(buf);
  const tensors = entries.map(({ name, shape, at }) => {
    const data = new Float32Array(paramSize(shape));
    for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(at + 4 * i);
    return { name, shape, data };
  });
  return { tensors, metadata };
}

/** The metadata alone, after the same checks of the header as decodeSafetensors (no tensor data read). */
export function readSafetensorsMetadata(bytes: Uint8Array): Record<string, string> {
  return parseHeader(asBuffer(bytes)).metadata;
}
