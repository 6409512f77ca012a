/**
 * Starting weights from a `ddpm export` file (or one scripts/torch/ddpm_unet.py's save_exported
 * wrote after training in PyTorch): `ddpm train --init-from FILE` fine-tunes from them. The file
 * fixes the architecture; the run is new (step 0, fresh Adam moments, the EMA starting at the
 * weights), and records the file's path and SHA-256 in its config.
 */
import { sha256Hex } from '../util/sha256';
import * as fs from 'fs';
import * as path from 'path';
import { UNetConfig, validateConfig } from '../model/config';
import { fromTorch, torchName, torchShape } from '../model/torchLayout';
import { UNetModel } from '../model/unetModel';
import { InitFrom } from '../training/config';
import { SafetensorsError, decodeSafetensors, readSafetensorsMetadata } from './safetensors';

export class InitWeightsError extends Error {
  constructor(file: string, problem: string) {
    super(`--init-from ${file}: ${problem}`);
    this.name = 'InitWeightsError';
  }
}

function readBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new InitWeightsError(file, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message);
  }
}

/** `read` on the file's bytes, its format errors said as the file's. */
function parsed<T>(file: string, bytes: Uint8Array, read: (bytes: Uint8Array) => T): T {
  try {
    return read(bytes);
  } catch (err) {
    if (err instanceof SafetensorsError) throw new InitWeightsError(file, `not a safetensors file of float32 tensors (${err.message})`);
    throw err;
  }
}


/** The architecture a file holds, and what a run records of it: its header is checked and its
 * bytes hashed; the tensors are read when the run starts (loadInitWeights). */
export function describeInitFile(file: string): { from: InitFrom; model: UNetConfig } {
  const bytes = readBytes(file);
  const raw = parsed(file, bytes, readSafetensorsMetadata).unet_config;
  if (raw === undefined) throw new InitWeightsError(file, 'no unet_config in its metadata (write it with ddpm export or ddpm_unet.save_exported)');
  let model: UNetConfig;
  try {
    model = validateConfig(JSON.parse(raw) as UNetConfig);
  } catch (err) {
    throw new InitWeightsError(file, `unet_config: ${(err as Error).message}`);
  }
  return { from: { file: path.resolve(file), sha256: sha256Hex(bytes) }, model };
}

/** The flat parameter vector of `model` from the file the run recorded; every tensor must be there
 * with its shape, and no other, and the file must be the one recorded (the same SHA-256). */
export function loadInitWeights(from: InitFrom, model: UNetModel): Float32Array {
  const bytes = readBytes(from.file);
  const now = sha256Hex(bytes);
  if (now !== from.sha256) throw new InitWeightsError(from.file, `changed since the run recorded it (SHA-256 ${now}, recorded ${from.sha256})`);
  const byName = new Map(parsed(from.file, bytes, decodeSafetensors).tensors.map((t) => [t.name, t]));
  const flat = new Float32Array(model.size);
  const views = model.flatViews(flat);
  model.specs.forEach((spec, i) => {
    const name = torchName(spec.name);
    const t = byName.get(name);
    if (t === undefined) throw new InitWeightsError(from.file, `no tensor ${name}`);
    const shape = torchShape(spec);
    if (t.shape.join() !== shape.join()) throw new InitWeightsError(from.file, `${name} has shape [${t.shape}], the model's is [${shape}]`);
    views[i].set(fromTorch(spec, t.data));
    byName.delete(name);
  });
  if (byName.size > 0) throw new InitWeightsError(from.file, `tensors the model does not have: ${[...byName.keys()].slice(0, 5).join(', ')}${byName.size > 5 ? ', ...' : ''}`);
  return flat;
}
