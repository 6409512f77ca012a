/**
 * Atomic checkpoints: written into a temporary directory, fsynced, renamed into place; `latest`
 * updated the same way; the last K kept. Loading verifies every checksum and falls back to the
 * previous complete checkpoint when one is torn or corrupt.
 */
import * as fs from 'fs';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { sha256Hex } from '../util/sha256';
import type { ParamSpec } from '../model/paramSpecs';
import { fsyncDir, writeFileAtomic, writeFileSynced } from '../util/fsync';
import { CheckpointError } from './errors';
import { crashPoint } from '../util/crashPoint';
import {
  CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, LATEST_FILE, MANIFEST_FILE, ManifestFile, STEP_DIR_PREFIX, TEMP_DIR_PREFIX,
  TrainStateFile, WeightsFile, stepDirName, stepOfDirName,
} from './format';
import { TrainConfig, savedTrainConfig } from '../training/config';
import type { OptimizerState } from '../training/optimizer';

export interface CheckpointData {
  config: TrainConfig;
  state: OptimizerState;
  loss: number | null;
  dataCursor: number;
}

export interface LoadedCheckpoint extends CheckpointData {
  dir: string;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function weightsJson(binFile: string, specs: readonly ParamSpec[], prefix = ''): WeightsFile {
  return {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    weightsManifest: [{ paths: [binFile], weights: specs.map((s) => ({ name: prefix + s.name, shape: s.shape, dtype: 'float32' as const })) }],
  };
}

export class CheckpointStore {
  constructor(readonly root: string, private readonly specs: readonly ParamSpec[], private readonly warn: (line: string) => void = () => {}) {}

  /** Saves a checkpoint for state.step and returns its directory. */
  save(data: CheckpointData): string {
    const name = stepDirName(data.state.step);
    const tmp = path.join(this.root, `${TEMP_DIR_PREFIX}${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      fs.mkdirSync(this.root, { recursive: true });
      fs.mkdirSync(tmp);
      const files: Record<string, Uint8Array> = {};
      const adamBytes = new Uint8Array(data.state.adamM.byteLength + data.state.adamV.byteLength);
      adamBytes.set(bytesOf(data.state.adamM), 0);
      adamBytes.set(bytesOf(data.state.adamV), data.state.adamM.byteLength);
      files['model.bin'] = bytesOf(data.state.params);
      files['model.json'] = Buffer.from(JSON.stringify({ ...weightsJson('model.bin', this.specs), modelConfig: data.config.model }, null, 1));
      files['ema.bin'] = bytesOf(data.state.ema);
      files['ema.json'] = Buffer.from(JSON.stringify({ ...weightsJson('ema.bin', this.specs), modelConfig: data.config.model }, null, 1));
      files['optimizer.bin'] = adamBytes;
      const optimizerManifest = weightsJson('optimizer.bin', this.specs, 'm/');
      optimizerManifest.weightsManifest[0].weights.push(...weightsJson('', this.specs, 'v/').weightsManifest[0].weights);
      files['optimizer.json'] = Buffer.from(JSON.stringify({ ...optimizerManifest, step: data.state.step }, null, 1));
      const train: TrainStateFile = {
        format: CHECKPOINT_FORMAT, formatVersion: CHECKPOINT_FORMAT_VERSION, step: data.state.step, config: data.config,
        rng: { seed: data.config.seed }, dataCursor: data.dataCursor, loss: data.loss, parameterCount: data.state.params.length,
        savedAt: new Date().toISOString(),
      };
      files['train.json'] = Buffer.from(JSON.stringify(train, null, 1));
      const manifest: ManifestFile = { format: CHECKPOINT_FORMAT, formatVersion: CHECKPOINT_FORMAT_VERSION, step: data.state.step, files: {} };
      for (const [file, bytes] of Object.entries(files)) {
        writeFileSynced(path.join(tmp, file), bytes);
        manifest.files[file] = { sha256: sha256Hex(bytes), bytes: bytes.byteLength };
        crashPoint(`checkpoint-file-${file}`, data.state.step);
      }
      // The manifest is the commit record: a directory without it is never loaded.
      writeFileSynced(path.join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 1));
      fsyncDir(tmp);
      crashPoint('checkpoint-manifest', data.state.step);
      const final = path.join(this.root, name);
      fs.rmSync(final, { recursive: true, force: true });
      fs.renameSync(tmp, final);
      fsyncDir(this.root);
      crashPoint('checkpoint-renamed', data.state.step);
      writeFileAtomic(path.join(this.root, LATEST_FILE), `${name}\n`);
      crashPoint('checkpoint-latest', data.state.step);
      return final;
    } catch (err) {
      try {
        fs.rmSync(tmp, { recursive: true, force: true });
      } catch {
        // Nothing was created (e.g. a path component is a file): nothing to clean.
      }
      throw new CheckpointError(`saving checkpoint ${name} in ${this.root} failed: ${(err as Error).message}; the previous checkpoint is intact`, { cause: err });
    }
  }

  /** Step directories, newest first. */
  list(): { name: string; step: number }[] {
    if (!fs.existsSync(this.root)) return [];
    return fs.readdirSync(this.root)
      .map((name) => ({ name, step: stepOfDirName(name) }))
      .filter((e): e is { name: string; step: number } => e.step !== undefined)
      .sort((a, b) => b.step - a.step);
  }

  /** Keeps the newest `keep` checkpoints and removes leftovers of interrupted saves. */
  prune(keep: number): void {
    for (const e of this.list().slice(Math.max(keep, 1))) fs.rmSync(path.join(this.root, e.name), { recursive: true, force: true });
    this.removeLeftovers();
  }

  removeLeftovers(): void {
    if (!fs.existsSync(this.root)) return;
    for (const name of fs.readdirSync(this.root)) {
      if (name.startsWith(TEMP_DIR_PREFIX) || name.startsWith(`${LATEST_FILE}.tmp-`)) fs.rmSync(path.join(this.root, name), { recursive: true, force: true });
    }
  }

  /** Loads the newest complete checkpoint, or undefined if there is none. `latest` is not
   * trusted here: a crash between the rename and its update leaves it one save behind. */
  loadLatest(): LoadedCheckpoint | undefined {
    this.removeLeftovers();
    for (const { name } of this.list()) {
      try {
        return loadCheckpointDir(path.join(this.root, name), this.specs);
      } catch (err) {
        this.warn(`warning: skipping checkpoint ${path.join(this.root, name)}: ${(err as Error).message}`);
      }
    }
    return undefined;
  }
}

/** Reads and verifies one checkpoint directory; throws CheckpointError naming what is wrong. */
export function verifyCheckpointDir(dir: string): ManifestFile {
  const manifestPath = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(manifestPath)) throw new CheckpointError(`${dir}: no ${MANIFEST_FILE} (incomplete save)`);
  let manifest: ManifestFile;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as ManifestFile;
  } catch (err) {
    throw new CheckpointError(`${manifestPath}: not valid JSON (${(err as Error).message})`);
  }
  if (manifest.format !== CHECKPOINT_FORMAT || typeof manifest.files !== 'object' || manifest.files === null) {
    throw new CheckpointError(`${manifestPath}: not a ${CHECKPOINT_FORMAT} manifest`);
  }
  for (const [file, meta] of Object.entries(manifest.files)) {
    const p = path.join(dir, file);
    if (!fs.existsSync(p)) throw new CheckpointError(`${p}: missing`);
    const bytes = fs.readFileSync(p);
    if (bytes.byteLength !== meta.bytes) throw new CheckpointError(`${p}: ${bytes.byteLength} bytes, manifest says ${meta.bytes} (truncated?)`);
    if (sha256Hex(bytes) !== meta.sha256) throw new CheckpointError(`${p}: checksum mismatch (corrupt)`);
  }
  return manifest;
}

function readFloats(file: string, expected: number, offset = 0): Float32Array {
  const buf = fs.readFileSync(file);
  if (buf.byteLength < (offset + expected) * 4) throw new CheckpointError(`${file}: too short for ${expected} parameters`);
  // Copy into a fresh, aligned buffer: Node's file buffers may start at any byte offset.
  const bytes = new Uint8Array(expected * 4);
  bytes.set(buf.subarray(offset * 4, (offset + expected) * 4));
  return new Float32Array(bytes.buffer);
}

export function loadCheckpointDir(dir: string, specs: readonly ParamSpec[]): LoadedCheckpoint {
  verifyCheckpointDir(dir);
  const train = JSON.parse(fs.readFileSync(path.join(dir, 'train.json'), 'utf8')) as TrainStateFile;
  const count = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  if (train.parameterCount !== count) {
    throw new CheckpointError(`${dir}: holds ${train.parameterCount} parameters, this model has ${count} (different model config?)`);
  }
  const state: OptimizerState = {
    params: readFloats(path.join(dir, 'model.bin'), count),
    ema: readFloats(path.join(dir, 'ema.bin'), count),
    adamM: readFloats(path.join(dir, 'optimizer.bin'), count),
    adamV: readFloats(path.join(dir, 'optimizer.bin'), count, count),
    step: train.step,
  };
  return { dir, config: checkedConfig(dir, train.config), state, loss: train.loss, dataCursor: train.dataCursor };
}

/** The model config stored in a checkpoint, for commands that build the model from it. */
export function readCheckpointConfig(dir: string): TrainConfig {
  const p = path.join(dir, 'train.json');
  if (!fs.existsSync(p)) throw new CheckpointError(`${dir}: not a checkpoint directory (no train.json)`);
  return checkedConfig(dir, (JSON.parse(fs.readFileSync(p, 'utf8')) as TrainStateFile).config);
}

function checkedConfig(dir: string, raw: TrainConfig): TrainConfig {
  try {
    return savedTrainConfig(raw);
  } catch (err) {
    throw new CheckpointError(`${dir}: train.json: ${(err as Error).message}`);
  }
}

/** A checkpoint root (with `latest`) or a step directory -> the step directory to load. */
export function resolveCheckpointDir(dirOrRoot: string): string {
  if (!fs.existsSync(dirOrRoot)) throw new CheckpointError(`${dirOrRoot}: no such checkpoint directory`);
  if (!fs.statSync(dirOrRoot).isDirectory()) throw new CheckpointError(`${dirOrRoot}: not a directory (a checkpoint is a directory, or a run directory holding them)`);
  if (fs.existsSync(path.join(dirOrRoot, MANIFEST_FILE))) return dirOrRoot;
  const latest = path.join(dirOrRoot, LATEST_FILE);
  if (fs.existsSync(latest)) return path.join(dirOrRoot, fs.readFileSync(latest, 'utf8').trim());
  const newest = fs.readdirSync(dirOrRoot).filter((n) => n.startsWith(STEP_DIR_PREFIX)).sort().pop();
  if (newest === undefined) throw new CheckpointError(`${dirOrRoot}: no checkpoint found (no ${LATEST_FILE}, no ${STEP_DIR_PREFIX}* directory)`);
  return path.join(dirOrRoot, newest);
}

/** What `ddpm sample --checkpoint ARG` loads: a step directory as it is; a run directory's newest
 * complete checkpoint, falling back to the previous one if the newest is corrupt. */
export function loadCheckpointArg(arg: string, specs: readonly ParamSpec[], log: (line: string) => void): LoadedCheckpoint {
  const loaded = resolveCheckpointDir(arg) === arg ? loadCheckpointDir(arg, specs) : new CheckpointStore(arg, specs, log).loadLatest();
  if (loaded === undefined) throw new CheckpointError(`${arg}: no complete checkpoint`);
  return loaded;
}
