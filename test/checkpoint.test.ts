/**
 * Checkpoints (DESIGN.md "Checkpoint format", RELIABILITY.md items 10-12): exact round trips, the
 * TensorFlow.js weights-manifest format, retention, checksums with fallback to the previous
 * checkpoint, leftovers of interrupted saves, and saves that fail on a real filesystem error.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createHash } from 'crypto';
import { spawnSync } from 'child_process';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/backend';
import { CheckpointStore, readCheckpointConfig } from '../src/checkpoint/store';
import { CheckpointError } from '../src/checkpoint/errors';
import { ManifestFile, WeightsFile } from '../src/checkpoint/format';
import { unetParamSpecs } from '../src/model/paramSpecs';
import { OptimizerState } from '../src/training/optimizer';
import type { TrainConfig } from '../src/training/config';
import { bundleHelper } from './helpers/childProcess';
import { CHILD_SPECS, FIXTURE_CONFIG, fixtureState, sameBytes, sameState, specsSize } from './helpers/checkpointFixture';

const specs = unetParamSpecs(FIXTURE_CONFIG.model);
const n = specsSize(specs);

let tmp: string;
let root: string;
let warnings: string[];
let store: CheckpointStore;

beforeAll(async () => {
  await initBackend('cpu');
});

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-checkpoint-test-'));
  root = path.join(tmp, 'run');
  warnings = [];
  store = new CheckpointStore(root, specs, (line) => warnings.push(line));
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function save(step: number): string {
  return store.save({ config: FIXTURE_CONFIG, state: fixtureState(step, n), loss: 0.5 + step, dataCursor: step * 8 });
}

function expectState(actual: OptimizerState, step: number): void {
  const expected = fixtureState(step, n);
  expect(actual.step).toBe(step);
  expect(sameBytes(actual.params, expected.params)).toBe(true);
  expect(sameBytes(actual.ema, expected.ema)).toBe(true);
  expect(sameBytes(actual.adamM, expected.adamM)).toBe(true);
  expect(sameBytes(actual.adamV, expected.adamV)).toBe(true);
}

const entries = (dir: string) => fs.readdirSync(dir).sort();

describe('save and loadLatest', () => {
  it('round-trip params, EMA, Adam moments and step bit for bit, with loss and data cursor', () => {
    save(7);
    const loaded = store.loadLatest();
    expect(loaded).toBeDefined();
    expectState(loaded!.state, 7);
    expect(loaded!.loss).toBe(7.5);
    expect(loaded!.dataCursor).toBe(56);
    expect(loaded!.dir).toBe(path.join(root, 'step-00000007'));
    expect(warnings).toEqual([]);
  });

  it('restore the full training config', () => {
    save(1);
    expect(store.loadLatest()!.config).toEqual(FIXTURE_CONFIG);
  });

  it('restore the objective; a checkpoint written before its fields existed reads as eps, unweighted', () => {
    store.save({ config: { ...FIXTURE_CONFIG, prediction: 'v', snrGamma: 5 }, state: fixtureState(1, n), loss: 1, dataCursor: 8 });
    expect(store.loadLatest()!.config).toMatchObject({ prediction: 'v', snrGamma: 5 });
    expect(readCheckpointConfig(path.join(root, 'step-00000001'))).toMatchObject({ prediction: 'v', snrGamma: 5 });
    const { prediction: _p, snrGamma: _g, ...older } = FIXTURE_CONFIG;
    const dir = store.save({ config: older as TrainConfig, state: fixtureState(2, n), loss: 1, dataCursor: 16 });
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'train.json'), 'utf8')).config;
    expect(saved).not.toHaveProperty('prediction');
    expect(saved).not.toHaveProperty('snrGamma');
    expect(store.loadLatest()!.config).toMatchObject({ prediction: 'eps', snrGamma: 0 });
    expect(readCheckpointConfig(dir)).toMatchObject({ prediction: 'eps', snrGamma: 0 });
    expect(warnings).toEqual([]);
  });

  it('restore the learning-rate schedule, weight decay and class dropout; an older checkpoint reads as constant, no decay, 0.1', () => {
    store.save({ config: { ...FIXTURE_CONFIG, lrSchedule: 'cosine', adamWeightDecay: 0.01, classDropout: 0.2 }, state: fixtureState(1, n), loss: 1, dataCursor: 8 });
    expect(store.loadLatest()!.config).toMatchObject({ lrSchedule: 'cosine', adamWeightDecay: 0.01, classDropout: 0.2 });
    const { lrSchedule: _s, adamWeightDecay: _w, classDropout: _c, ...older } = FIXTURE_CONFIG;
    const dir = store.save({ config: older as TrainConfig, state: fixtureState(2, n), loss: 1, dataCursor: 16 });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'train.json'), 'utf8')).config).not.toHaveProperty('lrSchedule');
    expect(readCheckpointConfig(dir)).toMatchObject({ lrSchedule: 'constant', adamWeightDecay: 0, classDropout: 0.1 });
    expect(warnings).toEqual([]);
  });

  it('restore how images were fitted; an older checkpoint reads as stretch, what runs did before --image-fit', () => {
    store.save({ config: { ...FIXTURE_CONFIG, imageFit: 'crop' }, state: fixtureState(1, n), loss: 1, dataCursor: 8 });
    expect(store.loadLatest()!.config.imageFit).toBe('crop');
    const { imageFit: _f, ...older } = FIXTURE_CONFIG;
    const dir = store.save({ config: older as TrainConfig, state: fixtureState(2, n), loss: 1, dataCursor: 16 });
    expect(readCheckpointConfig(dir).imageFit).toBe('stretch');
    expect(() => readCheckpointConfig(store.save({ config: { ...FIXTURE_CONFIG, imageFit: 'pad' as TrainConfig['imageFit'] }, state: fixtureState(3, n), loss: 1, dataCursor: 8 })))
      .toThrow('image-fit must be one of crop, stretch, got "pad"');
    expect(warnings).toEqual([]);
  });

  it('refuse a checkpoint whose learning-rate schedule or weight decay is invalid, naming it', () => {
    const bad = (config: Partial<TrainConfig>, step: number) => store.save({ config: { ...FIXTURE_CONFIG, ...config } as TrainConfig, state: fixtureState(step, n), loss: 1, dataCursor: 8 });
    expect(() => readCheckpointConfig(bad({ lrSchedule: 'step' as TrainConfig['lrSchedule'] }, 1))).toThrow('lr-schedule must be one of constant, linear, cosine, got "step"');
    expect(() => readCheckpointConfig(bad({ adamWeightDecay: -0.5 }, 2))).toThrow(CheckpointError);
  });

  it('refuse a checkpoint whose prediction target is unknown, naming it', () => {
    const dir = store.save({ config: { ...FIXTURE_CONFIG, prediction: 'noise' as TrainConfig['prediction'] }, state: fixtureState(1, n), loss: 1, dataCursor: 8 });
    expect(() => readCheckpointConfig(dir)).toThrow(CheckpointError);
    expect(() => readCheckpointConfig(dir)).toThrow('prediction must be one of eps, v, x0, got "noise"');
  });

  it('find nothing, without warnings, in an empty or missing directory', () => {
    expect(store.loadLatest()).toBeUndefined();
    fs.mkdirSync(root);
    expect(store.loadLatest()).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it('write a manifest with the sha256 and byte size of every other file', () => {
    const dir = save(3);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as ManifestFile;
    expect(manifest.step).toBe(3);
    expect(Object.keys(manifest.files).sort()).toEqual(entries(dir).filter((f) => f !== 'manifest.json'));
    for (const [file, meta] of Object.entries(manifest.files)) {
      const bytes = fs.readFileSync(path.join(dir, file));
      expect(meta).toEqual({ sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.byteLength });
    }
  });
});

describe('weight files in TensorFlow.js weights-manifest format', () => {
  /** Decodes DIR/JSON_FILE's weights with tfjs's own decoder, as tf.loadLayersModel would. */
  function decode(dir: string, jsonFile: string): { names: string[]; shapes: number[][]; values: Float32Array[] } {
    const json = JSON.parse(fs.readFileSync(path.join(dir, jsonFile), 'utf8')) as WeightsFile;
    expect(json.weightsManifest).toHaveLength(1);
    const group = json.weightsManifest[0];
    const buf = fs.readFileSync(path.join(dir, group.paths[0]));
    const data = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
    const tensors = tf.io.decodeWeights(data, group.weights);
    const names = Object.keys(tensors);
    const out = { names, shapes: names.map((k) => tensors[k].shape), values: names.map((k) => tensors[k].dataSync() as Float32Array) };
    tf.dispose(Object.values(tensors));
    return out;
  }

  /** The flat vector cut into one slice per parameter spec. */
  function slices(flat: Float32Array): Float32Array[] {
    let offset = 0;
    return specs.map((s) => {
      const size = s.shape.reduce((a, b) => a * b, 1);
      offset += size;
      return flat.subarray(offset - size, offset);
    });
  }

  it.each([
    ['model.json', 'params' as const],
    ['ema.json', 'ema' as const],
  ])('%s + its .bin decode with tf.io.decodeWeights into the named, shaped tensors', (file, field) => {
    const dir = save(2);
    const decoded = decode(dir, file);
    expect(decoded.names).toEqual(specs.map((s) => s.name));
    expect(decoded.shapes).toEqual(specs.map((s) => s.shape));
    const expected = slices(fixtureState(2, n)[field]);
    decoded.values.forEach((v, i) => expect(sameBytes(v, expected[i])).toBe(true));
  });

  it('optimizer.json + optimizer.bin decode into m/NAME and v/NAME Adam moments', () => {
    const dir = save(2);
    const decoded = decode(dir, 'optimizer.json');
    expect(decoded.names).toEqual([...specs.map((s) => `m/${s.name}`), ...specs.map((s) => `v/${s.name}`)]);
    expect(decoded.shapes).toEqual([...specs, ...specs].map((s) => s.shape));
    const expected = [...slices(fixtureState(2, n).adamM), ...slices(fixtureState(2, n).adamV)];
    decoded.values.forEach((v, i) => expect(sameBytes(v, expected[i])).toBe(true));
  });
});

describe('retention', () => {
  it('after K+3 saves with prune(K), exactly K step directories remain and latest names the newest', () => {
    const keep = 2;
    for (let step = 1; step <= keep + 3; step++) {
      save(step);
      store.prune(keep);
    }
    expect(entries(root)).toEqual(['latest', 'step-00000004', 'step-00000005']);
    expect(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim()).toBe('step-00000005');
    expectState(store.loadLatest()!.state, 5);
  });
});

describe('a corrupt newest checkpoint', () => {
  const flipBit = (file: string) => {
    const bytes = fs.readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x10;
    fs.writeFileSync(file, bytes);
  };
  const truncate = (file: string) => fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));

  it.each([
    ['model.bin truncated to half', (dir: string) => truncate(path.join(dir, 'model.bin')), /model\.bin: \d+ bytes, manifest says \d+ \(truncated\?\)/],
    ['one bit flipped in ema.bin', (dir: string) => flipBit(path.join(dir, 'ema.bin')), /ema\.bin: checksum mismatch/],
    ['one bit flipped in optimizer.bin', (dir: string) => flipBit(path.join(dir, 'optimizer.bin')), /optimizer\.bin: checksum mismatch/],
    ['one bit flipped in train.json', (dir: string) => flipBit(path.join(dir, 'train.json')), /train\.json: checksum mismatch/],
    ['manifest.json missing', (dir: string) => fs.rmSync(path.join(dir, 'manifest.json')), /no manifest\.json/],
    ['manifest.json truncated', (dir: string) => truncate(path.join(dir, 'manifest.json')), /manifest\.json: not valid JSON/],
  ])('(%s) is skipped with a warning and the previous one is loaded', (_what, corrupt, reason) => {
    save(1);
    const newest = save(2);
    corrupt(newest);
    const loaded = store.loadLatest();
    expectState(loaded!.state, 1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('step-00000002');
    expect(warnings[0]).toMatch(reason);
  });

  it('when every checkpoint is corrupt, loadLatest returns undefined and warns about each', () => {
    save(1);
    save(2);
    for (const dir of ['step-00000001', 'step-00000002']) fs.truncateSync(path.join(root, dir, 'model.bin'), 10);
    expect(store.loadLatest()).toBeUndefined();
    expect(warnings).toHaveLength(2);
  });
});

describe('leftovers of a save killed mid-way (kill -9)', () => {
  it('are removed at load and ignored: temp directories at any stage and a half-written latest', () => {
    save(1);
    save(2);
    // Killed while writing files: a partial temp directory.
    const partial = path.join(root, '.tmp-step-00000003-4242-0badf00d');
    fs.mkdirSync(partial);
    fs.writeFileSync(path.join(partial, 'model.bin'), Buffer.alloc(100));
    // Killed after the manifest was written but before the rename: complete, yet never committed.
    const unrenamed = path.join(root, '.tmp-step-00000004-4242-deadbeef');
    fs.cpSync(path.join(root, 'step-00000002'), unrenamed, { recursive: true });
    // Killed while updating `latest`.
    fs.writeFileSync(path.join(root, 'latest.tmp-4242-0123456789ab'), 'step-00000004\n');

    const loaded = store.loadLatest();
    expectState(loaded!.state, 2);
    expect(entries(root)).toEqual(['latest', 'step-00000001', 'step-00000002']);
    expect(warnings).toEqual([]);
  });

  it('do not stop the next save of the same step', () => {
    save(1);
    fs.mkdirSync(path.join(root, '.tmp-step-00000002-4242-0badf00d'));
    store.loadLatest();
    save(2);
    expectState(store.loadLatest()!.state, 2);
  });
});

describe('a save that fails', () => {
  it('throws CheckpointError when the checkpoint root cannot be created (a path component is a regular file)', () => {
    // chmod cannot make a directory unwritable for root; a file in the way fails for everyone.
    fs.writeFileSync(path.join(tmp, 'not-a-dir'), 'x');
    const blocked = new CheckpointStore(path.join(tmp, 'not-a-dir', 'run'), specs);
    expect(() => blocked.save({ config: FIXTURE_CONFIG, state: fixtureState(1, n), loss: null, dataCursor: 0 })).toThrow(CheckpointError);
  });

  describe('on a real filesystem error mid-write (child process)', () => {
    const childN = specsSize(CHILD_SPECS);
    let childJs: string;
    let buildDir: string;

    beforeAll(() => {
      buildDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-checkpoint-child-'));
      childJs = bundleHelper('checkpointSaveChild.ts', buildDir);
    });

    afterAll(() => {
      fs.rmSync(buildDir, { recursive: true, force: true });
    });

    interface ChildReport {
      saves: { step: number; ok: boolean; name?: string; message?: string; code?: string }[];
      entriesAfterSaves: string[];
      loadedStep: number | null;
      loadedMatches: boolean;
      warnings: string[];
    }

    /** Runs `bash -c SCRIPT` with $NODE = this Node, $1 = the bundled child, $2 = the checkpoint root, behind an optional prefix. */
    function runChild(script: string, prefix: string[] = []): ChildReport {
      const argv = [...prefix, 'bash', '-c', script, 'bash', childJs, root];
      const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE: process.execPath } });
      if (r.status !== 0) throw new Error(`child failed (${r.status ?? r.signal}): ${r.stderr}`);
      return JSON.parse(r.stdout) as ChildReport;
    }

    function expectFailedSaveLeftPreviousIntact(report: ChildReport, code: string): void {
      const failed = report.saves.find((s) => s.step === 2)!;
      expect(failed.ok).toBe(false);
      expect(failed.name).toBe('CheckpointError');
      expect(failed.code).toBe(code);
      expect(failed.message).toMatch(/saving checkpoint step-00000002 .* failed: .*previous checkpoint is intact/);
      // No temporary directory, no step-2 directory, and latest still names step 1.
      expect(report.entriesAfterSaves).toEqual(['latest', 'step-00000001']);
      expect(report.loadedStep).toBe(1);
      expect(report.loadedMatches).toBe(true);
      expect(report.warnings).toEqual([]);
    }

    it('(file-size limit, EFBIG) throws CheckpointError, cleans up, and the previous checkpoint still loads', () => {
      const childStore = new CheckpointStore(root, CHILD_SPECS);
      childStore.save({ config: FIXTURE_CONFIG, state: fixtureState(1, childN), loss: 1, dataCursor: 8 });
      // 64 KiB per file: model.bin (101,000 bytes) cannot be written. Node ignores SIGXFSZ, so write() fails with EFBIG.
      const report = runChild('ulimit -f 64 && exec "$NODE" "$1" "$2" 2');
      expectFailedSaveLeftPreviousIntact(report, 'EFBIG');
      expect(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim()).toBe('step-00000001');
      expect(sameState(childStore.loadLatest()!.state, fixtureState(1, childN))).toBe(true);
    });

    // A private tmpfs needs unprivileged user namespaces (unshare -Urm); skipped where they are off.
    const mountable = spawnSync('unshare', ['-Urm', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs "${os.tmpdir()}"`], { timeout: 10_000 }).status === 0;
    (mountable ? it : it.skip)('(disk full on a 600 KiB tmpfs, ENOSPC) throws CheckpointError, cleans up, and the previous checkpoint still loads', () => {
      fs.mkdirSync(root);
      // One checkpoint of CHILD_SPECS takes about 410 KB: the first save fits, the second runs out of space.
      const report = runChild('mount -t tmpfs -o size=600k tmpfs "$2" && exec "$NODE" "$1" "$2" 1 2', ['unshare', '-Urm']);
      expect(report.saves[0]).toEqual({ step: 1, ok: true });
      expectFailedSaveLeftPreviousIntact(report, 'ENOSPC');
    });
  });
});
