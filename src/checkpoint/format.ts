/**
 * Checkpoint layout (DESIGN.md, README "Checkpoint format"). One directory per step:
 *   model.json + model.bin        weights, TensorFlow.js weights-manifest format
 *   ema.json + ema.bin            EMA weights, same format
 *   optimizer.json + optimizer.bin Adam moments (m/NAME, v/NAME) and the update count
 *   train.json                    full training config, RNG seed, data cursor, last loss
 *   manifest.json                 sha256 and size of every file above; written last
 * and a `latest` file naming the newest complete directory.
 */
import type { TrainConfig } from '../training/config';

export const CHECKPOINT_FORMAT = 'ddpm-cluster-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;
export const LATEST_FILE = 'latest';
export const MANIFEST_FILE = 'manifest.json';
export const STEP_DIR_PREFIX = 'step-';
export const TEMP_DIR_PREFIX = '.tmp-';

export function stepDirName(step: number): string {
  return `${STEP_DIR_PREFIX}${String(step).padStart(8, '0')}`;
}

export function stepOfDirName(name: string): number | undefined {
  const m = /^step-(\d{8,})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
}

export interface WeightsFile {
  format: string;
  formatVersion: number;
  weightsManifest: { paths: string[]; weights: WeightEntry[] }[];
}

export interface TrainStateFile {
  format: string;
  formatVersion: number;
  step: number;
  config: TrainConfig;
  rng: { seed: number };
  /** Examples consumed so far in the endless sequence of seeded epochs. */
  dataCursor: number;
  loss: number | null;
  parameterCount: number;
  savedAt: string;
}

export interface ManifestFile {
  format: string;
  formatVersion: number;
  step: number;
  files: Record<string, { sha256: string; bytes: number }>;
}
