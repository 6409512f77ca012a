/**
 * The `ddpm` command line as a user runs it: real `node bin/ddpm.js` processes (which load dist/,
 * so run `npm run build` after changing src/). Few processes, each ~1 s to start.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFile } from 'child_process';
import { createHash } from 'crypto';
import { PNG } from 'pngjs';
import { makeSchedule } from '../src/schedule';
import { REPO_ROOT } from './helpers/childProcess';
import { availableCores } from '../src/cli/localWorkers';
import { loadCheckpointArg, readCheckpointConfig, resolveCheckpointDir } from '../src/checkpoint/store';
import { loadModelCheckpoint } from '../src/cli/checkpointArg';
import { decodeSafetensors, encodeSafetensors } from '../src/checkpoint/safetensors';
import { fromTorch, torchName } from '../src/model/torchLayout';
import { UNetModel } from '../src/model/unetModel';
import { decodeNpz, decodeStrings } from '../src/data/npz';
import { readDirectoryLabels } from '../src/cli/sampleOutput';
import { initBackend } from '../src/backend/backend';
import { generateImages } from '../src/training/generate';
import { imageBytes } from '../src/data/png';


const BIN = path.join(REPO_ROOT, 'bin', 'ddpm.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-cli-test-'));

/** Runs `node bin/ddpm.js ARGS` in the temp directory; never rejects on a non-zero exit. */
function ddpm(args: string[], timeoutMs = 90_000, env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: tmp, timeout: timeoutMs, maxBuffer: 64 << 20, env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

beforeAll(() => {
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('ddpm --help', () => {
  it('lists the commands train, sample, schedule and model', async () => {
    const r = await ddpm(['--help']);
    expect(r.code).toBe(0);
    for (const command of ['train', 'sample', 'schedule', 'model']) expect(r.stdout).toMatch(new RegExp(`^\\s*ddpm ${command}\\b`, 'm'));
  });
});

describe('a command that stops before it finishes', () => {
  it('exits 70 with one line, never 0 (Node exits 0 once nothing is left to wait for, even mid-command)', async () => {
    // main() replaced by one awaiting a promise nothing settles, as a lost GPU or thread event would leave it.
    const preload = path.join(tmp, 'never-settles.js');
    fs.writeFileSync(preload, `require(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'cli', 'main.js'))}).main = () => new Promise(() => {});\n`);
    const r = await new Promise<Result>((resolve) => {
      execFile(process.execPath, ['-r', preload, BIN, 'schedule'], { cwd: tmp, timeout: 30_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
      });
    });
    expect(r).toEqual({ code: 70, stdout: '', stderr: 'ddpm: internal error: the command stopped before it finished (nothing left to wait for)\n' });
  });
});

describe('ddpm schedule --schedule cosine --timesteps 1000', () => {
  let json: Record<string, unknown>;

  beforeAll(async () => {
    const r = await ddpm(['schedule', '--schedule', 'cosine', '--timesteps', '1000']);
    expect(r.code).toBe(0);
    json = JSON.parse(r.stdout) as Record<string, unknown>;
  });

  const ARRAYS = ['betas', 'alphasCumprod', 'posteriorVariance', 'posteriorLogVarianceClipped', 'posteriorMeanCoef1', 'posteriorMeanCoef2'] as const;

  it('prints the six schedule arrays, T values each', () => {
    expect(Object.keys(json).filter((k) => Array.isArray(json[k])).sort()).toEqual([...ARRAYS].sort());
    for (const k of ARRAYS) expect(json[k]).toHaveLength(1000);
  });

  it('starts with the improved-DDPM cosine beta_0', () => {
    // python3: f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2; 1 - f(1/1000) / f(0)
    // -> 4.128422482196914e-05 (float64; mpmath at 50 digits: 4.12842248217778e-05, so float64 itself
    // is only good to ~5e-12 here). Tolerance 5e-11: a one-ulp cos() difference between glibc and V8
    // is amplified ~2.4e4x by the subtraction (see test/schedule.test.ts).
    const beta0 = (json.betas as number[])[0];
    expect(Math.abs(beta0 - 4.128422482196914e-5) / 4.128422482196914e-5).toBeLessThan(5e-11);
  });

  it('prints every value so that it parses back to the same float64, bit for bit', () => {
    const s = makeSchedule('cosine', 1000);
    for (const k of ARRAYS) {
      const printed = json[k] as number[];
      const exact = Array.from(s[k]);
      const mismatch = exact.findIndex((v, i) => !Object.is(v, printed[i]));
      expect({ array: k, mismatch }).toEqual({ array: k, mismatch: -1 });
    }
  });
});

describe('ddpm model --preset cifar10', () => {
  it("prints the DDPM paper's CIFAR-10 parameter count, 35746307", async () => {
    const r = await ddpm(['model', '--preset', 'cifar10']);
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toContain('parameters: 35746307');
  });
});

/** A user's mistake: exit code 2, one line `ddpm: error: ...` containing `message`, no stack
 * trace, and `untouched` (a checkpoint directory, an output file) not created. */
function expectUserError(r: Result, message: string, untouched: string): void {
  expect(r.code).toBe(2);
  const errors = lines(r.stderr).filter((l) => l.startsWith('ddpm: error:'));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toContain(message);
  expect(r.stderr).not.toContain('    at ');
  expect(fs.existsSync(untouched)).toBe(false);
}

describe('user errors: exit code 2 and one line `ddpm: error: ...`, no stack trace', () => {
  const garbage = () => {
    const file = path.join(tmp, 'garbage.idx');
    fs.writeFileSync(file, Buffer.from('this is not an IDX file, just some bytes \x00\x01\x02\xff'));
    return file;
  };

  /** Two 8x8 images in an IDX file with no label file beside it. */
  const unlabelled = () => {
    const file = path.join(tmp, 'unlabelled-images-idx3-ubyte');
    const header = Buffer.alloc(16);
    [0x803, 2, 8, 8].forEach((v, i) => header.writeUInt32BE(v, 4 * i));
    fs.writeFileSync(file, Buffer.concat([header, Buffer.alloc(128, 50)]));
    return file;
  };

  it.each([
    ['a missing IDX file', () => ['--data', 'idx:/nonexistent/file'], '/nonexistent/file'],
    ['an unknown preset', () => ['--preset', 'huge'], 'huge'],
    ['a malformed IDX file', () => ['--data', `idx:${garbage()}`], path.join(tmp, 'garbage.idx')],
    ['an unknown prediction target', () => ['--prediction', 'noise'], 'prediction, Given: "noise", Choices: "eps", "v", "x0"'],
    ['a linear schedule of 10 timesteps', () => ['--timesteps', '10'], 'the linear schedule needs timesteps >= 21'],
    ['a negative --snr-gamma', () => ['--snr-gamma', '-1'], 'snr-gamma must be a finite number >= 0 (0: no weighting), got -1'],
    ['an unknown learning-rate schedule', () => ['--lr-schedule', 'step'], 'lr-schedule, Given: "step", Choices: "constant", "linear", "cosine"'],
    ['a negative --adam-weight-decay', () => ['--adam-weight-decay', '-0.01'], 'adam-weight-decay must be a finite number >= 0 (0: none), got -0.01'],
    ['--classes for data without labels', () => ['--classes', '10', '--data', `idx:${unlabelled()}`], 'has no class labels'],
    ['--classes below the data\'s labels', () => ['--classes', '5'], '--classes 5: the data (mnist) has labels up to 9; use --classes 10'],
    ['--class-dropout 1', () => ['--classes', '10', '--class-dropout', '1'], 'class-dropout must be in [0, 1), got 1'],
    ['--sample-steps 0 (found before training, not at its end)', () => ['--sample-steps', '0'], "--sample-steps must be an integer in [1, 1000] (the run's timesteps), got 0"],
    ['--sample-n -1', () => ['--sample-n', '-1'], '--sample-n must be a non-negative integer (0: no grid), got -1'],
    ['--image-channels 2', () => ['--image-channels', '2'], '--image-channels 2: images can be fitted to 1 (grey) or 3 (RGB) channels'],
    ['--timesteps 1000000', () => ['--timesteps', '1000000'], 'timesteps must be at most 100000, got 1000000'],
    ['an --out in a directory that does not exist (found before training)', () => ['--out', path.join(tmp, 'no-dir', 'grid.png')], `--out ${path.join(tmp, 'no-dir', 'grid.png')}: no such directory ${path.join(tmp, 'no-dir')}`],
    ['a --checkpoint-dir that is a file', () => ['--checkpoint-dir', path.join(REPO_ROOT, 'package.json')], `--checkpoint-dir ${path.join(REPO_ROOT, 'package.json')}: not a directory`],
    ['a negative --sample-guidance', () => ['--classes', '10', '--sample-guidance', '-1'], '--sample-guidance must be a finite number >= 0 (1: no guidance), got -1'],
  ])('train with %s', async (_what, extraArgs, named) => {
    const ckpt = path.join(tmp, 'never-written');
    const r = await ddpm(['train', '--preset', 'tiny', '--backend', 'cpu', '--checkpoint-dir', ckpt, ...extraArgs()]);
    expectUserError(r, named, ckpt);
  });
});

describe('train, then sample from the checkpoint (end to end, cpu backend)', () => {
  let run: string;
  let train: Result;
  let samples: Record<'a' | 'b' | 'c', Result>;

  beforeAll(async () => {
    run = path.join(tmp, 'run');
    train = await ddpm(['train', '--preset', 'tiny', '--backend', 'cpu', '--steps', '4', '--batch-size', '8', '--unit-size', '4',
      '--checkpoint-dir', run, '--sample-n', '4', '--sample-steps', '3', '--log-format', 'json', '--log-every', '0']);
    const sample = (seed: number, out: string) => ddpm(['sample', '--checkpoint', run, '--backend', 'cpu', '--ema', '--sampler', 'ddim',
      '--steps', '5', '--eta', '0', '--n', '4', '--seed', String(seed), '--out', path.join(tmp, out)]);
    // Two processes at a time on two cores.
    const [a, b] = await Promise.all([sample(1, 'A.png'), sample(1, 'B.png')]);
    const c = await sample(2, 'C.png');
    samples = { a, b, c };
  }, 180_000);

  it('train with --log-format json prints one parseable progress line per step (--log-every 0)', () => {
    const progress = lines(train.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(progress.map((p) => p.step)).toEqual([1, 2, 3, 4]);
    for (const p of progress) {
      expect(p).toMatchObject({ event: 'progress', totalSteps: 4, workers: Math.max(1, Math.min(availableCores(), 2)) });
      expect(p.loss).toEqual(expect.any(Number));
      expect(p.imagesPerSecond as number).toBeGreaterThan(0);
      expect(p.etaSeconds as number).toBeGreaterThanOrEqual(0);
    }
  });

  it('train exits 0 and says which backend it uses and, by default, starts one worker process per core', () => {
    expect(train).toMatchObject({ code: 0 });
    expect(lines(train.stderr)).toContain('backend: cpu');
    // --workers auto on the cpu backend: one process per core, at most one per unit (2 here).
    const perCore = Math.min(availableCores(), 2);
    expect(lines(train.stderr)).toContain(perCore > 1 ? `workers: ${perCore} local processes` : 'workers: computing in this process');
  });

  it('train writes `latest`, naming a complete step directory', () => {
    const latest = fs.readFileSync(path.join(run, 'latest'), 'utf8').trim();
    expect(latest).toBe('step-00000004');
    expect(fs.existsSync(path.join(run, latest, 'manifest.json'))).toBe(true);
  });

  it('train writes samples.png: a valid PNG holding a 2x2 grid of 8x8 images', () => {
    const png = fs.readFileSync(path.join(run, 'samples.png'));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(8)).toBe(13); // IHDR length
    expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
    // cols = ceil(sqrt(4)) = 2 images of 8 px, with 2 px padding around and between: 2 * (8 + 2) + 2.
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([22, 22]);
    // pngjs checks every chunk's CRC and inflates the data.
    expect(PNG.sync.read(png)).toMatchObject({ width: 22, height: 22 });
  });

  it('sample exits 0, says which backend it uses, and writes a PNG', () => {
    for (const r of Object.values(samples)) {
      expect(r.code).toBe(0);
      expect(lines(r.stderr)).toContain('backend: cpu');
    }
    expect(PNG.sync.read(fs.readFileSync(path.join(tmp, 'A.png')))).toMatchObject({ width: 22, height: 22 });
  });

  it('DDIM with eta 0 and the same seed gives byte-identical files', () => {
    expect(Buffer.compare(fs.readFileSync(path.join(tmp, 'A.png')), fs.readFileSync(path.join(tmp, 'B.png')))).toBe(0);
  });

  it('another seed gives another image', () => {
    expect(Buffer.compare(fs.readFileSync(path.join(tmp, 'A.png')), fs.readFileSync(path.join(tmp, 'C.png')))).not.toBe(0);
  });

  it('sample --sampler dpm-solver++ writes another image from the same noise; --eta with it, or more steps than T, is a one-line error', async () => {
    const dpm = (out: string, extra: string[] = [], steps = '5') => ddpm(['sample', '--checkpoint', run, '--backend', 'cpu', '--ema', '--sampler', 'dpm-solver++',
      '--steps', steps, '--n', '4', '--seed', '1', '--out', path.join(tmp, out), ...extra]);
    const ok = await dpm('D.png');
    expect(ok.code).toBe(0);
    expect(PNG.sync.read(fs.readFileSync(path.join(tmp, 'D.png')))).toMatchObject({ width: 22, height: 22 });
    expect(Buffer.compare(fs.readFileSync(path.join(tmp, 'A.png')), fs.readFileSync(path.join(tmp, 'D.png')))).not.toBe(0);
    const bad = await dpm('E.png', ['--eta', '0.5']);
    expectUserError(bad, '--eta applies to --sampler ddim only (dpm-solver++ got --eta 0.5)', path.join(tmp, 'E.png'));
    const tooMany = await dpm('F.png', [], '1001');
    expectUserError(tooMany, "--steps must be an integer in [1, 1000] (the run's timesteps), got 1001", path.join(tmp, 'F.png'));
  }, 60_000);

  it('sample writes a .npz and a directory of PNGs holding the grid\'s images; threads, two --shard commands filling one directory, and a second run that completes it, change no byte', async () => {
    const base = ['sample', '--checkpoint', run, '--backend', 'cpu', '--steps', '3', '--n', '6', '--batch-size', '2'];
    const out = (name: string) => path.join(tmp, name);
    const [one, two, grid] = await Promise.all([
      ddpm([...base, '--threads', '1', '--out', out('one.npz')]),
      ddpm([...base, '--threads', '2', '--out', out('two.npz')]),
      ddpm([...base, '--out', out('six.png')]),
    ]);
    for (const r of [one, two, grid]) expect(r.code).toBe(0);
    expect(lines(two.stderr)).toContain('sampling on 2 threads');
    expect(lines(one.stderr)).toContain(`wrote ${out('one.npz')}: arr_0 uint8 (6, 8, 8, 1): 6 samples from ${path.join(run, 'step-00000004')} (step 4, ema weights)`);
    const npz = fs.readFileSync(out('one.npz'));
    expect(Buffer.compare(npz, fs.readFileSync(out('two.npz')))).toBe(0);
    const arrays = decodeNpz(npz);
    expect([...arrays.keys()]).toEqual(['arr_0']); // no labels: the model is unconditional
    const pixels = arrays.get('arr_0')!;
    expect(pixels).toMatchObject({ descr: '|u1', shape: [6, 8, 8, 1] });
    // Image k of the array is image k of the grid (3 columns, 2 px padding).
    const png = PNG.sync.read(fs.readFileSync(out('six.png')));
    const gridPixel = (k: number, y: number, x: number) => png.data[4 * ((2 + Math.floor(k / 3) * 10 + y) * png.width + 2 + (k % 3) * 10 + x)];
    const imagePixel = (k: number, y: number, x: number) => pixels.data[k * 64 + y * 8 + x];
    for (let k = 0; k < 6; k++) for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) expect(gridPixel(k, y, x)).toBe(imagePixel(k, y, x));
    expect(new Set(pixels.data).size).toBeGreaterThan(10);
    // Each batch has noise of its own (images 0 and 2 open different batches) ...
    expect(Array.from(pixels.data.subarray(0, 64))).not.toEqual(Array.from(pixels.data.subarray(128, 192)));
    // ... and the command draws what the library's generateImages (the training grids' path) does in batches of 2.
    await initBackend('cpu');
    const { model, loaded } = loadModelCheckpoint(run, () => undefined);
    const library = await generateImages(model, loaded.state.ema, makeSchedule(loaded.config.schedule, loaded.config.timesteps), {
      n: 6, seed: 1, sampler: 'ddim', steps: 3, eta: 0, prediction: loaded.config.prediction, chunk: 2,
    });
    expect(Array.from(imageBytes(library))).toEqual(Array.from(pixels.data));

    const dir = out('pngs');
    const first = await ddpm([...base, '--out', dir]);
    expect(first.code).toBe(0);
    const names = ['000000.png', '000001.png', '000002.png', '000003.png', '000004.png', '000005.png'];
    expect(fs.readdirSync(dir).sort()).toEqual([...names, 'sample.json']);
    for (const [k, name] of names.entries()) {
      const image = PNG.sync.read(fs.readFileSync(path.join(dir, name)));
      expect([image.width, image.height]).toEqual([8, 8]);
      expect(Array.from({ length: 64 }, (_, i) => image.data[4 * i])).toEqual(Array.from(pixels.data.subarray(k * 64, (k + 1) * 64)));
    }
    // An interrupted run: image 2 missing (so its batch, images 2-3, is drawn again), image 5 half written.
    const before = fs.readFileSync(path.join(dir, '000003.png'));
    fs.rmSync(path.join(dir, '000002.png'));
    fs.writeFileSync(path.join(dir, '000005.png.tmp-1-abc'), 'partial');
    fs.rmSync(path.join(dir, '000005.png'));
    const again = await ddpm([...base, '--out', dir]);
    expect(again.code).toBe(0);
    expect(lines(again.stderr)).toContain(`${dir}: 2 of the 6 images already there (same settings); sampling the other 4`);
    expect(Buffer.compare(fs.readFileSync(path.join(dir, '000003.png')), before)).toBe(0);
    for (const [k, name] of names.entries()) {
      const image = PNG.sync.read(fs.readFileSync(path.join(dir, name)));
      expect(Array.from({ length: 64 }, (_, i) => image.data[4 * i])).toEqual(Array.from(pixels.data.subarray(k * 64, (k + 1) * 64)));
    }
    // Two shards, started at once into one new directory, fill it with the same PNGs; a run
    // without --shard then finds every image there.
    const shared = out('shards');
    const shards = await Promise.all(['0/2', '1/2'].map((shard) => ddpm([...base, '--threads', '1', '--shard', shard, '--out', shared])));
    for (const r of shards) expect(r.code).toBe(0);
    // Shard 0's own 4 are there; shard 1's PNGs land one at a time, so 0 to 2 of them.
    expect(lines(shards[0].stderr).find((l) => l.startsWith('wrote'))).toMatch(new RegExp(`^wrote 4 PNGs to ${shared} \\([456] of 6 there\\) of shard 0/2: 4 samples from `));
    expect(fs.readdirSync(shared).sort()).toEqual([...names, 'sample.json']);
    for (const name of [...names, 'sample.json']) expect(Buffer.compare(fs.readFileSync(path.join(shared, name)), fs.readFileSync(path.join(dir, name)))).toBe(0);
    const check = await ddpm([...base, '--out', shared]);
    expect(lines(check.stderr)).toContain(`${shared}: 6 of the 6 images already there (same settings); sampling the other 0`);
    expect(lines(check.stderr)).toContain(`wrote 0 PNGs to ${shared} (6 of 6 there): 6 samples from ${path.join(run, 'step-00000004')} (step 4, ema weights)`);
    // Far too many images for one file are refused before anything is drawn.
    const huge = [...base.map((a) => (a === '6' ? '100000000' : a))];
    expectUserError(await ddpm([...huge, '--out', out('huge.png')]), `--out ${out('huge.png')}: a grid of 100000000 images would be 9.3 GiB of pixels; write a .npz or a directory of PNGs`, out('huge.png'));
    expectUserError(await ddpm([...huge, '--out', out('huge.npz')]), `--out ${out('huge.npz')}: 100000000 images of 8x8x1 make a 6.0 GiB .npz, over the 4 GiB this writer supports; write a directory of PNGs`, out('huge.npz'));
    // Other settings would mix two samplings in one directory.
    const other = await ddpm([...base.map((a) => (a === '3' ? '4' : a)), '--out', dir]);
    expectUserError(other, `--out ${dir}: the directory holds samples made with other settings (steps 3 -> 4); give a new or empty directory`, out('never'));
    fs.mkdirSync(out('foreign'));
    fs.writeFileSync(path.join(out('foreign'), 'cat.jpg'), 'not ours');
    expectUserError(await ddpm([...base, '--out', out('foreign')]), `--out ${out('foreign')}: the directory holds files that ddpm sample did not write; give a new or empty directory`, out('never'));
  }, 300_000); // about a dozen processes; over 2 minutes on a busy 2-core machine is possible

  it('a disk that fills up while samples are written is one line naming the file, leaving only whole files (ENOSPC, an 8 KiB tmpfs in a user namespace)', async () => {
    const mnt = path.join(tmp, 'small-disk');
    fs.mkdirSync(mnt);
    const sample = `"$NODE" "$BIN" sample --checkpoint "$RUN" --backend cpu --steps 2 --n 200 --threads 1`;
    // Each command's exit code and stderr, then what it left on the disk.
    const script = `mount -t tmpfs -o size=8k tmpfs "$MNT" || exit 99
      ${sample} --out "$MNT/x.npz" 2>&1; echo "exit $?"; ls -A "$MNT"; echo ---
      ${sample} --out "$MNT/pngs" 2>&1; echo "exit $?"; ls -A "$MNT/pngs" | grep -c '\.png$'; ls -A "$MNT/pngs" | grep -c 'tmp' ; true`;
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile('unshare', ['-Urm', 'sh', '-c', script], { env: { ...process.env, NODE: process.execPath, BIN, RUN: run, MNT: mnt }, timeout: 60_000 }, (err, stdout) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout });
      });
    });
    expect(r.code).toBe(0);
    const [npz, pngs] = r.stdout.split('---\n').map(lines);
    const error = (l: string[]) => l.filter((x) => x.startsWith('ddpm: error:'));
    expect(error(npz)).toEqual([`ddpm: error: --out ${mnt}/x.npz: cannot write: no space left on device (ENOSPC)`]);
    expect(npz.filter((l) => !l.startsWith('backend')).slice(1)).toEqual(['exit 2']); // nothing left behind: no x.npz, no temporary file
    expect(r.stdout).not.toContain('    at ');
    expect(error(pngs)).toHaveLength(1);
    expect(error(pngs)[0]).toMatch(new RegExp(`^ddpm: error: --out ${mnt}/pngs/\\d{6}\\.png: cannot write: no space left on device \\(ENOSPC\\)$`));
    const [exit, whole, temporary] = pngs.filter((l) => !l.startsWith('backend') && !l.startsWith('ddpm: error'));
    expect(exit).toBe('exit 2');
    expect(Number(whole)).toBeGreaterThan(0); // the images that fitted are there, whole (a rerun would keep them)
    expect(Number(whole)).toBeLessThan(200);
    expect(temporary).toBe('0');
  }, 90_000);
});

describe('ddpm sample: --out, --batch-size and --threads mistakes are one-line errors before anything is loaded', () => {
  it.each([
    ['an --out that is neither .png, .npz nor a directory', ['--out', 'x.jpg'], '--out x.jpg: give a .png (a grid), a .npz (a NumPy array) or a directory (one PNG per image)'],
    ['--batch-size 0', ['--batch-size', '0'], '--batch-size must be a positive integer, got 0'],
    ['--threads 0', ['--threads', '0'], '--threads must be "auto" or an integer from 1 to 256, got 0'],
    ['a .npz in a missing directory', ['--out', 'MISSING/x.npz'], '--out MISSING/x.npz: no such directory'],
    ['an empty --out', ['--out', ''], '--out must name a .png, a .npz or a directory, got ""'],
    ['--seed 1.5', ['--seed', '1.5'], '--seed must be an integer in [0, 2^32), got 1.5'],
    ['--seed -1', ['--seed=-1'], '--seed must be an integer in [0, 2^32), got -1'],
    ['--shard 2/2', ['--shard', '2/2', '--out', 'd'], '--shard must be I/K with 0 <= I < K (shard I of K, counting from 0), got 2/2'],
    ['--shard with a .npz', ['--shard', '0/2', '--out', 'x.npz'], '--shard 0/2 needs a directory --out, which the shards fill together (got x.npz)'],
  ])('%s', async (_what, args, message) => {
    const fix = (a: string) => a.replace('MISSING', path.join(tmp, 'no-dir'));
    expectUserError(await ddpm(['sample', '--checkpoint', 'MISSING', ...args].map(fix)), fix(message), path.join(tmp, 'no-dir'));
  });
});

describe('other commands\' user errors: exit code 2, one line, no stack trace', () => {
  it.each([
    ['sample --eta 2', ['sample', '--checkpoint', 'MISSING', '--eta', '2'], '--eta must be in [0, 1]'],
    ['sample --out in a missing directory', ['sample', '--checkpoint', 'MISSING', '--out', 'MISSING/g.png'], '--out MISSING/g.png: no such directory'],
    ['worker --connect without a port', ['worker', '--connect', 'tcp://127.0.0.1'], '--connect tcp://127.0.0.1: not a ZeroMQ address'],
    ['worker --connect with no host', ['worker', '--connect', 'tcp://:5555'], '--connect tcp://:5555: not a ZeroMQ address'],
    ['inspect of a file', ['inspect', path.join(REPO_ROOT, 'package.json')], 'package.json: not a directory (a checkpoint is a directory'],
    ['export of a file', ['export', '--checkpoint', path.join(REPO_ROOT, 'package.json'), '--out', 'MISSING.safetensors'], 'package.json: not a directory'],
    ['coordinator --bind that is not an address', ['coordinator', '--bind', 'localhost:5555'], '--bind localhost:5555: not a ZeroMQ address'],
  ])('%s', async (_what, args, message) => {
    expectUserError(await ddpm(args.map((a) => a.replace('MISSING', path.join(tmp, 'no-dir')))), message.replace('MISSING', path.join(tmp, 'no-dir')), path.join(tmp, 'no-dir'));
  });
});

describe('ddpm export (cpu backend): the checkpoint\'s weights under PyTorch\'s names, test/torchExport.test.ts checks the layout', () => {
  let run: string;

  beforeAll(async () => {
    run = path.join(tmp, 'export-run');
    const r = await ddpm(['train', '--preset', 'tiny', '--classes', '10', '--backend', 'cpu', '--workers', '0', '--steps', '2', '--batch-size', '4',
      '--unit-size', '4', '--checkpoint-dir', run, '--sample-n', '2', '--sample-sampler', 'dpm-solver++', '--sample-steps', '3', '--log-every', '0']);
    expect(r.code).toBe(0);
    // The grid's sampler is a flag too.
    expect(lines(r.stderr)).toContain(`samples: ${path.join(run, 'samples.png')} (2 images, EMA weights, DPM-Solver++ 3 steps)`);
  }, 120_000);

  it('writes the EMA weights by default and the raw ones with --weights raw, with the run\'s settings as metadata', async () => {
    const { model, loaded } = loadModelCheckpoint(run, () => undefined);
    for (const weights of ['ema', 'raw'] as const) {
      const out = path.join(tmp, `${weights}.safetensors`);
      const r = await ddpm(['export', '--checkpoint', run, ...(weights === 'raw' ? ['--weights', 'raw'] : []), '--out', out]);
      expect(r.code).toBe(0);
      expect(lines(r.stderr)).toContain(`wrote ${out}: ${model.specs.length} tensors, ${model.size} parameters (${weights}) from ${loaded.dir} (step 2)`);
      const file = decodeSafetensors(fs.readFileSync(out));
      expect(file.metadata).toEqual({
        format: 'ddpm-cluster-unet', unet_config: JSON.stringify(loaded.config.model), prediction: 'eps', schedule: 'linear',
        timesteps: '1000', step: '2', weights, parameters: String(model.size),
      });
      const expected = model.flatViews(weights === 'ema' ? loaded.state.ema : loaded.state.params);
      const byName = new Map(file.tensors.map((t) => [t.name, t]));
      model.specs.forEach((spec, i) => expect(Array.from(fromTorch(spec, byName.get(torchName(spec.name))!.data))).toEqual(Array.from(expected[i])));
    }
    // EMA and raw differ after two steps, so the flag chose.
    expect(Buffer.compare(fs.readFileSync(path.join(tmp, 'ema.safetensors')), fs.readFileSync(path.join(tmp, 'raw.safetensors')))).not.toBe(0);
  });

  it('train --init-from the export starts a new run at step 0 with those weights (params and EMA) and the file\'s U-Net, recording the file', async () => {
    const file = path.join(tmp, 'ema.safetensors');
    const exported = decodeSafetensors(fs.readFileSync(file));
    const tuned = path.join(tmp, 'tuned');
    // No model flags: the file's tiny class-conditional U-Net, not the default preset.
    const r = await ddpm(['train', '--init-from', file, '--backend', 'cpu', '--workers', '0', '--steps', '0', '--checkpoint-dir', tuned, '--sample-n', '0', '--lr', '1e-3']);
    expect(r.code).toBe(0);
    const sha256 = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    expect(lines(r.stderr)).toContain(`starting from the weights in ${file} (SHA-256 ${sha256.slice(0, 12)})`);
    const source = loadModelCheckpoint(run, () => undefined).loaded;
    const config = readCheckpointConfig(resolveCheckpointDir(tuned));
    expect(config.model).toEqual(source.config.model);
    expect(config.initFrom).toEqual({ file, sha256 });
    expect(config.lr).toBe(1e-3);
    const model = new UNetModel(config.model);
    const loaded = loadCheckpointArg(tuned, model.specs, () => undefined);
    expect(loaded.state.step).toBe(0);
    expect(Buffer.compare(Buffer.from(loaded.state.params.buffer), Buffer.from(source.state.ema.buffer))).toBe(0);
    expect(Buffer.compare(Buffer.from(loaded.state.ema.buffer), Buffer.from(source.state.ema.buffer))).toBe(0);
    expect(exported.tensors.length).toBe(model.specs.length);
    // --resume continues the checkpoint, whatever --init-from says, and names the flag as ignored.
    const resumed = await ddpm(['train', '--init-from', file, '--resume', '--backend', 'cpu', '--workers', '0', '--steps', '1', '--checkpoint-dir', tuned, '--sample-n', '0', '--lr', '1e-3']);
    expect(resumed.code).toBe(0);
    expect(lines(resumed.stderr)).toContain("note: --resume keeps the checkpoint's settings; ignored: --init-from (only --steps may change)");
    expect(loadCheckpointArg(tuned, model.specs, () => undefined).state.step).toBe(1);
  }, 60_000);

  it.each([
    ['a model flag that disagrees with the file', () => ['--channels', '32'], 'the file fixes the model; it disagrees with --channels'],
    ['another preset', () => ['--preset', 'mnist'], 'the file fixes the model; it disagrees with --preset'],
    ['--classes on an unconditional file', () => {
      const f = decodeSafetensors(fs.readFileSync(path.join(tmp, 'ema.safetensors')));
      const config = JSON.parse(f.metadata.unet_config) as Record<string, unknown>;
      delete config.classes;
      const plain = path.join(tmp, 'plain.safetensors');
      fs.writeFileSync(plain, encodeSafetensors({ metadata: { ...f.metadata, unet_config: JSON.stringify(config) }, tensors: f.tensors.filter((t) => t.name !== 'class_emb.weight') }));
      return ['--init-from', plain, '--classes', '10'];
    }, 'plain.safetensors: the file fixes the model; it disagrees with --classes'],
    ['a missing file', () => ['--init-from', path.join(tmp, 'none.safetensors')], `--init-from ${path.join(tmp, 'none.safetensors')}: no such file`],
    ['a file missing a tensor', () => {
      const f = decodeSafetensors(fs.readFileSync(path.join(tmp, 'ema.safetensors')));
      const cut = path.join(tmp, 'cut.safetensors');
      fs.writeFileSync(cut, encodeSafetensors({ metadata: f.metadata, tensors: f.tensors.filter((t) => t.name !== 'mid_attn_1.q.weight') }));
      return ['--init-from', cut];
    }, 'cut.safetensors: no tensor mid_attn_1.q.weight'],
    ['a file that is not safetensors', () => {
      const junk = path.join(tmp, 'junk.safetensors');
      fs.writeFileSync(junk, 'PK\x03\x04 a zip, as torch.save writes, not safetensors');
      return ['--init-from', junk];
    }, 'junk.safetensors: not a safetensors file of float32 tensors'],
  ])('train --init-from with %s: exit code 2, one line, nothing written', async (_what, args, message) => {
    const dir = path.join(tmp, 'never-tuned');
    const extra = args();
    const r = await ddpm(['train', ...(extra.includes('--init-from') ? [] : ['--init-from', path.join(tmp, 'ema.safetensors')]), ...extra, '--backend', 'cpu', '--workers', '0', '--steps', '0', '--checkpoint-dir', dir]);
    expectUserError(r, message, dir);
  });

  it.each([
    ['an --out directory that does not exist', () => ['--checkpoint', run, '--out', path.join(tmp, 'nowhere', 'm.safetensors')], `--out ${path.join(tmp, 'nowhere', 'm.safetensors')}: no such directory`],
    ['a missing checkpoint', () => ['--checkpoint', path.join(tmp, 'no-run'), '--out', path.join(tmp, 'x.safetensors')], 'no such checkpoint directory'],
  ])('%s: exit code 2, one line, no file', async (_what, args, message) => {
    const r = await ddpm(['export', ...args()]);
    expectUserError(r, message, path.join(tmp, 'x.safetensors'));
  });
});

describe('a flag given twice', () => {
  it('takes its last value, as most command lines do', async () => {
    const r = await ddpm(['schedule', '--timesteps', '10', '--timesteps', '30']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).timesteps).toBe(30);
  });
});

describe('ddpm schedule with a bad --timesteps', () => {
  it.each([
    ['0', 'timesteps must be a positive integer, got 0'],
    ['10', 'the linear schedule needs timesteps >= 21 (its last beta, 0.02 x 1000/T, reaches 1 at T = 20), got 10'],
  ])('--timesteps %s: exit code 2 and one line naming it, nothing on stdout', async (timesteps, message) => {
    const r = await ddpm(['schedule', '--timesteps', timesteps]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([`ddpm: error: ${message}`]);
    expect(r.stdout).toBe('');
  });
});

describe('train --lr-schedule cosine --adam-weight-decay, then --resume with more --steps (cpu backend)', () => {
  it('reports the scheduled rate each step, keeps both in the checkpoint, and says where the decay now ends', async () => {
    const run = path.join(tmp, 'cosine');
    const common = ['train', '--preset', 'tiny', '--backend', 'cpu', '--workers', '0', '--batch-size', '4', '--unit-size', '4', '--lr', '1e-3',
      '--warmup-steps', '1', '--checkpoint-dir', run, '--sample-n', '0', '--log-format', 'json', '--log-every', '0'];
    const rates = (r: Result) => lines(r.stdout).map((l) => (JSON.parse(l) as { learningRate: number }).learningRate);
    const first = await ddpm([...common, '--steps', '3', '--lr-schedule', 'cosine', '--adam-weight-decay', '0.01']);
    expect(first.code).toBe(0);
    // Warm-up of 1 step, then (1 + cos(pi (step - 1) / 2)) / 2 of 1e-3.
    expect(rates(first)).toEqual([1e-3, 1e-3, 0.5e-3].map((v) => expect.closeTo(v, 15)));
    expect(readCheckpointConfig(path.join(run, 'step-00000003'))).toMatchObject({ lrSchedule: 'cosine', adamWeightDecay: 0.01, steps: 3 });
    // The checkpoint's settings win over the flags, which are named when given; --steps moves the end of the decay.
    const resumed = await ddpm([...common, '--steps', '5', '--resume', '--lr-schedule', 'linear', '--seed=4']);
    expect(resumed.code).toBe(0);
    expect(lines(resumed.stderr)).toContain("note: --steps 5 differs from the checkpoint's 3: the cosine learning rate now decays to 0 at step 5");
    expect(lines(resumed.stderr)).toContain("note: --resume keeps the checkpoint's settings; ignored: --seed, --lr-schedule (only --steps may change)");
    expect(rates(resumed)).toEqual([(1 + Math.cos(Math.PI / 2)) / 2, (1 + Math.cos(Math.PI * 3 / 4)) / 2].map((f) => expect.closeTo(1e-3 * f, 15)));
  }, 120_000);
});

describe('train --classes 10, then sample by class (cpu backend)', () => {
  it('draws one column per class, samples one class or refuses a class the model lacks, gives each image\'s class in a .npz (arr_1) or a directory (labels.csv), and refuses --class and --guidance for an unconditional model', async () => {
    const run = path.join(tmp, 'conditional');
    const train = await ddpm(['train', '--preset', 'tiny', '--classes', '10', '--backend', 'cpu', '--workers', '0', '--steps', '2', '--batch-size', '4',
      '--unit-size', '4', '--checkpoint-dir', run, '--sample-n', '20', '--sample-steps', '2', '--log-every', '0']);
    expect(train.code).toBe(0);
    // Ten columns of 8 px with 2 px padding: 10 * (8 + 2) + 2 wide, two rows.
    expect(PNG.sync.read(fs.readFileSync(path.join(run, 'samples.png')))).toMatchObject({ width: 102, height: 22 });
    const three = await ddpm(['sample', '--checkpoint', run, '--backend', 'cpu', '--class', '3', '--n', '4', '--steps', '2', '--out', path.join(tmp, 'three.png')]);
    expect(three.code).toBe(0);
    expect(PNG.sync.read(fs.readFileSync(path.join(tmp, 'three.png')))).toMatchObject({ width: 22, height: 22 });
    // A .npz and a directory carry each image's class: every class in turn, or the one asked for.
    const labelled = (out: string, ...extra: string[]) => ddpm(['sample', '--checkpoint', run, '--backend', 'cpu', '--n', '12', '--steps', '2', '--out', path.join(tmp, out), ...extra]);
    const [all, seven, dir] = await Promise.all([labelled('all.npz'), labelled('seven.npz', '--class', '7'), labelled('labelled')]);
    for (const r of [all, seven, dir]) expect(r.code).toBe(0);
    const classes = (file: string) => Array.from(new BigInt64Array(Uint8Array.from(decodeNpz(fs.readFileSync(path.join(tmp, file))).get('arr_1')!.data).buffer), Number);
    expect(classes('all.npz')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(classes('seven.npz')).toEqual(new Array(12).fill(7));
    expect(lines(all.stderr)).toContain(`wrote ${path.join(tmp, 'all.npz')}: arr_0 uint8 (12, 8, 8, 1), arr_1 int64 labels (12,): 12 samples from ${path.join(run, 'step-00000002')} (step 2, ema weights)`);
    const csv = fs.readFileSync(path.join(tmp, 'labelled', 'labels.csv'), 'utf8').trim().split('\n');
    expect(csv).toEqual(['file,class', ...Array.from({ length: 12 }, (_, i) => `${String(i).padStart(6, '0')}.png,${i % 10}`)]);
    expect(Array.from(readDirectoryLabels(path.join(tmp, 'labelled'))!)).toEqual(Array.from({ length: 12 }, (_, i) => i % 10));
    // Same settings, same images, whichever form they are written in.
    const first = PNG.sync.read(fs.readFileSync(path.join(tmp, 'labelled', '000011.png')));
    const arr = decodeNpz(fs.readFileSync(path.join(tmp, 'all.npz'))).get('arr_0')!.data;
    expect(Array.from({ length: 64 }, (_, i) => first.data[4 * i])).toEqual(Array.from(arr.subarray(11 * 64, 12 * 64)));
    const twelve = await ddpm(['sample', '--checkpoint', run, '--backend', 'cpu', '--class', '12', '--out', path.join(tmp, 'twelve.png')]);
    expect([twelve.code, lines(twelve.stderr).filter((l) => l.startsWith('ddpm: error:'))]).toEqual([2, ['ddpm: error: --class must be all, none or a class in [0, 10), got "12"']]);
    const plain = path.join(tmp, 'plain');
    await ddpm(['train', '--preset', 'tiny', '--backend', 'cpu', '--workers', '0', '--steps', '1', '--batch-size', '4', '--checkpoint-dir', plain, '--sample-n', '0']);
    const refused = await ddpm(['sample', '--checkpoint', plain, '--backend', 'cpu', '--class', '3', '--out', path.join(tmp, 'refused.png')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--class 3: the checkpoint's model is unconditional (trained without --classes)");
    const guided = await ddpm(['sample', '--checkpoint', plain, '--backend', 'cpu', '--guidance', '3', '--out', path.join(tmp, 'refused.png')]);
    expect([guided.code, guided.stderr]).toEqual([2, expect.stringContaining("--guidance 3: the checkpoint's model is unconditional")]);
    expect(fs.existsSync(path.join(tmp, 'twelve.png')) || fs.existsSync(path.join(tmp, 'refused.png'))).toBe(false);
  }, 120_000);
});

describe('images:DIR with images of several sizes (cpu backend)', () => {
  it('trains on them fitted one by one, non-square ones centre-cropped unless --image-fit stretch, and keeps the choice in the checkpoint', async () => {
    const data = path.join(tmp, 'photos');
    fs.mkdirSync(data);
    for (const [name, width, height] of [['a', 8, 8], ['b', 20, 12], ['c', 16, 16], ['d', 9, 14]] as const) {
      const png = new PNG({ width, height });
      png.data.fill(30 * name.charCodeAt(0) % 256);
      fs.writeFileSync(path.join(data, `${name}.png`), PNG.sync.write(png));
    }
    for (const fit of ['crop', 'stretch']) {
      const run = path.join(tmp, `photos-${fit}`);
      const train = await ddpm(['train', '--data', `images:${data}`, '--preset', 'tiny', '--image-channels', '3', '--backend', 'cpu', '--workers', '0',
        '--steps', '1', '--batch-size', '4', '--checkpoint-dir', run, '--sample-n', '0', ...(fit === 'crop' ? [] : ['--image-fit', fit])]);
      expect(train.code).toBe(0);
      const how = fit === 'crop' ? 'centre-cropped' : 'stretched';
      expect(lines(train.stderr)).toContain(`data: images:${data}: 4 images 4 sizes, 8x8 to 16x16, RGB, non-square ones ${how}, fitted to 8x8x3`);
      expect(readCheckpointConfig(path.join(run, 'step-00000001')).imageFit).toBe(fit);
    }
  }, 60_000);
});

describe('npz:FILE (cpu backend)', () => {
  it('trains class-conditionally on what numpy.savez_compressed wrote; a bad archive is a one-line error', async () => {
    const file = path.join(__dirname, 'reference', 'numpy_savez_compressed.npz');
    const run = path.join(tmp, 'npz-run');
    const train = await ddpm(['train', '--data', `npz:${file}`, '--preset', 'tiny', '--classes', '5', '--backend', 'cpu', '--workers', '0',
      '--steps', '1', '--batch-size', '4', '--checkpoint-dir', run, '--sample-n', '0']);
    expect(train.code).toBe(0);
    expect(lines(train.stderr)).toContain(`data: npz:${file}: 5 images 4x4x1 in 5 classes, fitted to 8x8x1`);
    const named = path.join(__dirname, 'reference', 'numpy_named.npz');
    const bad = await ddpm(['train', '--data', `npz:${named}`, '--preset', 'tiny', '--backend', 'cpu', '--workers', '0', '--steps', '1', '--checkpoint-dir', path.join(tmp, 'npz-bad')]);
    expect([bad.code, lines(bad.stderr).filter((l) => l.startsWith('ddpm: error'))]).toEqual([2, [`ddpm: error: npz:${named}: no arr_0 (its arrays: x_train, y_train); save the images first, unnamed: np.savez(f, images, labels)`]]);
    expect(bad.stderr).not.toMatch(/^\s+at /m);
    expect(fs.existsSync(path.join(tmp, 'npz-bad'))).toBe(false);
  }, 60_000);
});

describe('ddpm data', () => {
  it('writes the fitted data as a .npz that trains bit for bit as the data it came from, and a grid spread through it; bad --out is one line', async () => {
    const npz = path.join(tmp, 'mnist-tiny.npz');
    const written = await ddpm(['data', '--preset', 'tiny', '--out', npz]);
    expect(written.code).toBe(0);
    expect(lines(written.stderr)).toEqual(['data: mnist: 10000 images 28x28x1 in 10 classes, fitted to 8x8x1',
      'classes: 0 1001, 1 1127, 2 991, 3 1032, 4 980, 5 863, 6 1014, 7 1070, 8 944, 9 978', `wrote ${npz}: 10000 images and their labels; train with --data npz:${npz}`]);
    const arrays = decodeNpz(fs.readFileSync(npz));
    expect([arrays.get('arr_0')?.shape, arrays.get('arr_0')?.descr, arrays.get('arr_1')?.shape, arrays.get('arr_1')?.descr]).toEqual([[10000, 8, 8, 1], '|u1', [10000], '<i8']);
    // The same batches, hence the same parameters, from the archive as from the package.
    const common = ['--preset', 'tiny', '--classes', '10', '--backend', 'cpu', '--workers', '0', '--steps', '2', '--batch-size', '4', '--sample-n', '0'];
    const fromPackage = await ddpm(['train', ...common, '--checkpoint-dir', path.join(tmp, 'from-package')]);
    const fromNpz = await ddpm(['train', ...common, '--data', `npz:${npz}`, '--checkpoint-dir', path.join(tmp, 'from-npz')]);
    expect([fromPackage.code, fromNpz.code]).toEqual([0, 0]);
    expect(lines(fromNpz.stderr)).toContain(`data: npz:${npz}: 10000 images 8x8x1 in 10 classes`);
    const params = (dir: string) => fs.readFileSync(path.join(dir, 'step-00000002', 'model.bin'));
    expect(Buffer.compare(params(path.join(tmp, 'from-npz')), params(path.join(tmp, 'from-package')))).toBe(0);
    // A grid of --n images spread evenly: here images 0 and 2 of the 5 numpy wrote.
    const grid = path.join(tmp, 'data-grid.png');
    const reference = path.join(__dirname, 'reference', 'numpy_savez_compressed.npz');
    const drawn = await ddpm(['data', '--data', `npz:${reference}`, '--image-size', '4', '--n', '2', '--out', grid]);
    expect(lines(drawn.stderr)).toEqual([`data: npz:${reference}: 5 images 4x4x1 in 5 classes`, 'classes: 0 1, 1 1, 2 1, 3 0, 4 2', `wrote ${grid}: 2 of the 5 images, evenly spread`]);
    const png = PNG.sync.read(fs.readFileSync(grid));
    const image = (x0: number) => Array.from({ length: 16 }, (_, i) => png.data[4 * ((2 + Math.floor(i / 4)) * png.width + x0 + (i % 4))]);
    expect([png.width, png.height]).toEqual([2 * 4 + 3 * 2, 4 + 2 * 2]);
    expect([image(2), image(8)]).toEqual([0, 2].map((k) => Array.from({ length: 16 }, (_, i) => (16 * k + i) * 3)));
    expectUserError(await ddpm(['data', '--out', path.join(tmp, 'x.jpg')]), `--out ${path.join(tmp, 'x.jpg')}: name a .png (a grid) or a .npz (every image)`, path.join(tmp, 'x.jpg'));
    // An image folder's classes: counted, and named in the archive too.
    const folder = path.join(tmp, 'data-classes');
    for (const [cls, count] of [['cat', 3], ['dog', 1]] as const) {
      fs.mkdirSync(path.join(folder, cls), { recursive: true });
      for (let i = 0; i < count; i++) fs.writeFileSync(path.join(folder, cls, `${i}.png`), PNG.sync.write(new PNG({ width: 8, height: 8 })));
    }
    const pets = path.join(tmp, 'pets.npz');
    const packed = await ddpm(['data', '--data', `images:${folder}`, '--preset', 'tiny', '--image-channels', '3', '--out', pets]);
    expect(lines(packed.stderr)).toEqual([`data: images:${folder}: 4 images 8x8x3 in 2 classes (0 cat, 1 dog)`, 'classes: 0 cat 3, 1 dog 1', `wrote ${pets}: 4 images and their labels and class names; train with --data npz:${pets}`]);
    const unpacked = await ddpm(['data', '--data', `npz:${pets}`, '--preset', 'tiny', '--image-channels', '3']);
    expect(lines(unpacked.stderr)).toEqual([`data: npz:${pets}: 4 images 8x8x3 in 2 classes (0 cat, 1 dog)`, 'classes: 0 cat 3, 1 dog 1']);
  }, 120_000);
});

describe('class names: images:DIR with a subdirectory per class (cpu backend)', () => {
  it('are kept in the checkpoint, and ddpm sample takes --class by name', async () => {
    const data = path.join(tmp, 'pets');
    for (const [cls, value] of [['cat', 40], ['dog', 200]] as const) {
      fs.mkdirSync(path.join(data, cls), { recursive: true });
      for (let i = 0; i < 2; i++) {
        const png = new PNG({ width: 8, height: 8 });
        png.data.fill(value + i);
        fs.writeFileSync(path.join(data, cls, `${i}.png`), PNG.sync.write(png));
      }
    }
    const run = path.join(tmp, 'pets-run');
    const train = await ddpm(['train', '--data', `images:${data}`, '--preset', 'tiny', '--image-channels', '3', '--classes', '2', '--backend', 'cpu', '--workers', '0',
      '--steps', '1', '--batch-size', '4', '--checkpoint-dir', run, '--sample-n', '0']);
    expect(train.code).toBe(0);
    expect(lines(train.stderr)).toContain(`data: images:${data}: 4 images 8x8x3 in 2 classes (0 cat, 1 dog)`);
    expect(readCheckpointConfig(path.join(run, 'step-00000001')).classNames).toEqual(['cat', 'dog']);
    const dog = await ddpm(['sample', '--checkpoint', run, '--backend', 'cpu', '--class', 'dog', '--n', '2', '--steps', '2', '--out', path.join(tmp, 'dog.png')]);
    expect(dog.code).toBe(0);
    // A .npz of samples names the classes too, and reads back as a named dataset.
    const both = path.join(tmp, 'pets-samples.npz');
    const drawn = await ddpm(['sample', '--checkpoint', run, '--backend', 'cpu', '--n', '4', '--steps', '2', '--out', both]);
    expect(lines(drawn.stderr).find((l) => l.startsWith('wrote'))).toMatch(/^wrote .*: arr_0 uint8 \(4, 8, 8, 3\), arr_1 int64 labels \(4,\), class_names \(2,\): /);
    expect(decodeStrings(decodeNpz(fs.readFileSync(both)).get('class_names')!)).toEqual(['cat', 'dog']);
    const asData = await ddpm(['data', '--data', `npz:${both}`, '--preset', 'tiny', '--image-channels', '3']);
    expect(lines(asData.stderr)).toEqual([`data: npz:${both}: 4 images 8x8x3 in 2 classes (0 cat, 1 dog)`, 'classes: 0 cat 2, 1 dog 2']);
    const cow = await ddpm(['sample', '--checkpoint', run, '--backend', 'cpu', '--class', 'cow', '--out', path.join(tmp, 'cow.png')]);
    expect([cow.code, cow.stderr]).toEqual([2, expect.stringContaining('--class must be all, none or a class in [0, 2) or one of cat, dog, got "cow"')]);
  }, 120_000);
});

describe('--workers auto', () => {
  it('runs one process per core on one-core backends, no more than a step has units, and none on one core or a GPU backend', async () => {
    const { resolveLocalWorkers } = await import('../src/cli/localWorkers');
    expect(resolveLocalWorkers('auto', 'wasm', 2, 2)).toBe(2);
    expect(resolveLocalWorkers('auto', 'cpu', 16, 4)).toBe(4);
    expect(resolveLocalWorkers('auto', 'wasm', 3, 8)).toBe(3);
    expect(resolveLocalWorkers('auto', 'wasm', 1, 8)).toBe(0);
    expect(resolveLocalWorkers('auto', 'wasm', 8, 1)).toBe(0);
    expect(resolveLocalWorkers('auto', 'tensorflow', 16, 8)).toBe(0);
    expect(resolveLocalWorkers('auto', 'webgpu', 16, 8)).toBe(0);
    expect(resolveLocalWorkers('3', 'tensorflow', 1, 1)).toBe(3);
    expect(resolveLocalWorkers('0', 'wasm', 8, 8)).toBe(0);
    for (const bad of ['-1', '1.5', 'two', '', '1e3']) expect(() => resolveLocalWorkers(bad, 'wasm', 2, 2)).toThrow(`--workers must be "auto" or a non-negative integer, got ${bad}`);
  });
});

describe('backends that this machine lacks', () => {
  it.each([
    ['tensorflow', /backend 'tensorflow' needs @tensorflow\/tfjs-node-gpu \(CUDA\) or @tensorflow\/tfjs-node/],
    ['webgpu', /backend 'webgpu' (needs a Vulkan loader|: Dawn found no GPU adapter)/],
  ])('--backend %s: one clear line, exit 2, no native noise', async (backend, message) => {
    const ckpt = path.join(tmp, `never-${backend}`);
    const r = await ddpm(['train', '--preset', 'tiny', '--backend', backend, '--steps', '1', '--checkpoint-dir', ckpt]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr).filter((l) => l.startsWith('ddpm: error:'))).toEqual([expect.stringMatching(message)]);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(fs.existsSync(ckpt)).toBe(false);
  });

  it.each([
    ['DDPM_WEBGPU_DAWN_BACKEND', 'metal', 'vulkan, opengles, opengl'],
    ['DDPM_WEBGPU_KERNELS', 'fast', 'project, tfjs'],
    ['DDPM_WEBGPU_CONV_INPUT', 'fast', 'conv, tfjs'],
    ['DDPM_WEBGPU_REPLAY', 'maybe', 'on, off'],
    ['DDPM_WEBGPU_CONV', 'fast', 'tiled, tfjs'],
  ])('--backend webgpu with %s=%s: one line naming the allowed values, exit 2', async (name, value, allowed) => {
    const ckpt = path.join(tmp, `never-${name}`);
    const r = await ddpm(['train', '--preset', 'tiny', '--backend', 'webgpu', '--steps', '1', '--checkpoint-dir', ckpt], 90_000, { ...process.env, [name]: value });
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([`ddpm: error: backend 'webgpu': ${name}=${value} is not one of ${allowed}`]);
    expect(fs.existsSync(ckpt)).toBe(false);
  });

  it('finds a Vulkan loader on LD_LIBRARY_PATH, and reports none where there is none', async () => {
    const { findVulkanLoader } = await import('../src/backend/vulkan');
    const dir = fs.mkdtempSync(path.join(tmp, 'vk-'));
    expect(findVulkanLoader({ LD_LIBRARY_PATH: dir })).not.toBe(path.join(dir, 'libvulkan.so.1'));
    fs.writeFileSync(path.join(dir, 'libvulkan.so.1'), '');
    expect(findVulkanLoader({ LD_LIBRARY_PATH: `/nonexistent:${dir}` })).toBe(path.join(dir, 'libvulkan.so.1'));
  });

  it('names the webgpu adapter Dawn chose by its device, with vendor and driver where Dawn gives them', async () => {
    const { describeAdapter } = await import('../src/backend/backend');
    expect(describeAdapter({ info: { vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H100 80GB HBM3', description: 'NVIDIA: 580.159.04' } }, 'vulkan'))
      .toBe('webgpu adapter: NVIDIA H100 80GB HBM3 (nvidia, hopper, NVIDIA: 580.159.04), Dawn vulkan');
    expect(describeAdapter({ info: { vendor: '', device: '', description: 'Mesa' } }, 'opengles')).toBe('webgpu adapter: Mesa, Dawn opengles');
    expect(describeAdapter({}, 'vulkan')).toBe('webgpu adapter: unnamed, Dawn vulkan');
  });
});

describe('--resume with flags for settings the checkpoint fixes', () => {
  it('names only flags the user gave whose values differ, model flags and --preset included', async () => {
    const { ignoredOnResume } = await import('../src/cli/trainJob');
    const { TRAIN_DEFAULTS } = await import('../src/training/config');
    const saved = { ...TRAIN_DEFAULTS, lr: 1e-3, adamBeta1: 0.8 };
    const given = (...flags: string[]) => (flag: string) => flags.includes(flag);
    // Not given, the flags' defaults differ from the checkpoint's values without being named.
    expect(ignoredOnResume(saved, TRAIN_DEFAULTS, given())).toEqual([]);
    expect(ignoredOnResume(saved, { ...TRAIN_DEFAULTS, lr: 5e-4 }, given('lr', 'adam-beta1'))).toEqual(['--lr', '--adam-beta1']);
    expect(ignoredOnResume(saved, { ...saved, steps: 9 }, given('lr', 'steps'))).toEqual([]);
    const bigger = { ...saved, model: { ...saved.model, channels: 32, classes: 10 } };
    expect(ignoredOnResume(saved, bigger, given('channels', 'classes', 'preset'))).toEqual(['--channels', '--classes', '--preset']);
  });
});

describe('--update-threads', () => {
  it('auto is one per core, at most 8, from a million parameters; bad values are refused', async () => {
    const { resolveUpdateThreads } = await import('../src/cli/trainJob');
    expect(resolveUpdateThreads('auto', 35_746_307, 16)).toBe(8);
    expect(resolveUpdateThreads('auto', 1_000_000, 2)).toBe(2);
    expect(resolveUpdateThreads('auto', 999_999, 16)).toBe(1);
    expect(resolveUpdateThreads('3', 10, 1)).toBe(3);
    for (const bad of ['0', 'x', '2.5', '300']) expect(() => resolveUpdateThreads(bad, 1e7, 2)).toThrow(`--update-threads must be "auto" or an integer from 1 to 256, got ${bad}`);
  });
});

describe('cores available in a container', () => {
  it('reads the cgroup v2 and v1 CPU quota, rounded up to whole cores, and none where unlimited', async () => {
    const { cgroupCpuLimit } = await import('../src/cli/localWorkers');
    const files = (m: Record<string, string>) => (f: string) => m[f];
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' }))).toBe(2);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '400000 100000' }))).toBe(4);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '20000 100000' }))).toBe(1);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeUndefined();
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '300000\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }))).toBe(3);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }))).toBeUndefined();
    expect(cgroupCpuLimit(files({}))).toBeUndefined();
  });
});
