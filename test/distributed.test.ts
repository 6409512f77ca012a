/**
 * DESIGN.md's equivalence contract with real processes and sockets: the same seed and global
 * batch give bit-identical parameters with the in-process worker, 1 worker and 3 workers; and a
 * coordinator killed mid-run and restarted with --resume ends where an uninterrupted run ends.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort, killAll, startDdpm, waitExit, waitFor } from './helpers/cli';
import { relativeL2 } from './helpers/numeric';

const TINY = ['--preset', 'tiny', '--batch-size', '12', '--unit-size', '2', '--seed', '7', '--lr', '1e-3', '--warmup-steps', '2', '--sample-n', '0', '--log-every', '60'];

let root: string;
beforeAll(() => { root = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-dist-')); });
afterEach(() => killAll());
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function finalBytes(dir: string, file: string): Buffer {
  const latest = fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim();
  return fs.readFileSync(path.join(dir, latest, file));
}

function finalParams(dir: string): Float32Array {
  return new Float32Array(new Uint8Array(finalBytes(dir, 'model.bin')).buffer);
}

/** The last checkpoints of two runs hold the same parameters, EMA and Adam state, bit for bit. */
function expectSameFinalState(dir: string, reference: string): void {
  for (const file of ['model.bin', 'ema.bin', 'optimizer.bin']) {
    expect(Buffer.compare(finalBytes(dir, file), finalBytes(reference, file))).toBe(0);
  }
}

/** Each run's output (stdout and stderr), by checkpoint directory. */
const trained = new Map<string, string>();

/** Trains once per (backend, workers, steps, extra flags) in this file and returns the checkpoint directory. */
async function train(backend: string, workers: number, steps: number, extra: string[] = []): Promise<string> {
  const dir = path.join(root, `${backend}-w${workers}-s${steps}${extra.join('')}`);
  if (trained.has(dir)) return dir;
  const p = startDdpm(['train', ...TINY, '--backend', backend, '--steps', String(steps), '--workers', String(workers), '--checkpoint-dir', dir, ...extra]);
  const { code } = await waitExit(p, 150_000);
  if (code !== 0) throw new Error(`train --workers ${workers} exited ${code}:\n${p.output()}`);
  trained.set(dir, p.output());
  return dir;
}

// tfjs's webgpu backend through Dawn's OpenGL ES backend on Mesa's llvmpipe (src/backend/webgpu/dawn.ts):
// the same WGSL kernels a GPU runs, this project's conv weight gradient among them.
describe('on the webgpu backend, 5 steps', () => {
  let inProcess: string;
  beforeAll(async () => {
    process.env.DDPM_WEBGPU_DAWN_BACKEND = 'opengles';
    // On two update threads, as models of 1M parameters or more get by default: the parameters
    // the in-process worker uploads are then in shared memory (Dawn refused those once).
    inProcess = await train('webgpu', 0, 5, ['--update-threads', '2']);
  }, 160_000);

  it.each([1, 3])('with %i worker process(es) give the in-process parameters, EMA and Adam state bit for bit', async (workers) => {
    const dir = await train('webgpu', workers, 5);
    expectSameFinalState(dir, inProcess);
    // Units were replayed without tfjs (src/backend/webgpu/stepReplay.ts): a worker replays units
    // of size 2 once it has recorded and checked two. (Not necessarily every worker: the
    // speed-aware scheduler may give a slow one fewer than three of the 30 units.)
    const replayed = (trained.get(dir) ?? '').split('\n').filter((l) => l.includes('webgpu step replay by unit size: 2: replayed')).length;
    expect(replayed).toBeGreaterThanOrEqual(1);
    expect(replayed).toBeLessThanOrEqual(workers);
    // Each process says which GPU Dawn gave it: the coordinator (it samples) and every worker.
    expect((trained.get(dir) ?? '').split('\n').filter((l) => /^webgpu adapter: llvmpipe.*, Dawn opengles$/.test(l))).toHaveLength(workers + 1);
  }, 160_000);

  it('in-process: units of size 2 are replayed after the first two', () => {
    expect(trained.get(inProcess)).toMatch(/webgpu step replay by unit size: 2: replayed \(\d+ programs, \d+ MiB\)/);
  });
});

describe.each(['cpu', 'wasm'])('on the %s backend, 5 steps', (backend) => {
  let inProcess: string;
  beforeAll(async () => { inProcess = await train(backend, 0, 5); }, 160_000);

  it.each([1, 3])('with %i worker process(es) give the in-process parameters, EMA and Adam state bit for bit', async (workers) => {
    const dir = await train(backend, workers, 5);
    expectSameFinalState(dir, inProcess);
  }, 160_000);

  it.each([['the in-process worker', 0], ['2 worker processes', 2]])('with %s and the coordinator\'s update (clip, Adam, EMA, parameter encoding) on 3 threads give the in-process parameters bit for bit', async (_who, workers) => {
    expectSameFinalState(await train(backend, workers, 5, ['--update-threads', '3']), inProcess);
  }, 160_000);

  it('with the in-process worker computing on 3 threads give the in-process parameters bit for bit', async () => {
    const dir = path.join(root, `${backend}-in-process-threads`);
    const p = startDdpm(['train', ...TINY, '--backend', backend, '--steps', '5', '--workers', '0', '--threads', '3', '--checkpoint-dir', dir]);
    expect((await waitExit(p, 150_000)).code).toBe(0);
    expect(p.output()).toContain('workers: computing in this process on 3 threads');
    expectSameFinalState(dir, inProcess);
  }, 160_000);

  it('with one worker process computing on 3 threads give the in-process parameters bit for bit', async () => {
    const dir = path.join(root, `${backend}-threads`);
    const port = await freePort();
    const coordinator = startDdpm(['coordinator', ...TINY, '--backend', backend, '--steps', '5', '--bind', `tcp://127.0.0.1:${port}`, '--checkpoint-dir', dir, '--metrics-port', '0']);
    const worker = startDdpm(['worker', '--connect', `tcp://127.0.0.1:${port}`, '--name', 'threaded', '--backend', backend, '--threads', '3']);
    expect((await waitExit(coordinator, 150_000)).code).toBe(0);
    expect((await waitExit(worker, 20_000)).code).toBe(0);
    expect(coordinator.output()).toContain(`worker threaded attached (${backend}, 3 threads)`);
    expectSameFinalState(dir, inProcess);
  }, 160_000);
});

// WELCOME carries the objective: workers that ignored it would train the unweighted eps loss.
describe.each([['--prediction', 'v'], ['--prediction', 'x0'], ['--snr-gamma', '5']])('%s %s on wasm, 5 steps', (flag, value) => {
  it('with 2 worker processes gives the in-process parameters bit for bit, and not those of the default (eps, unweighted) run', async () => {
    const inProcess = await train('wasm', 0, 5, [flag, value]);
    const workers = await train('wasm', 2, 5, [flag, value]);
    expectSameFinalState(workers, inProcess);
    expect(relativeL2(finalParams(inProcess), finalParams(await train('wasm', 0, 5)))).toBeGreaterThan(1e-4);
  }, 300_000);
});

// WORK carries a conditional model's labels (and "no class" where the plan dropped one).
describe('--classes 10 on wasm, 5 steps', () => {
  it('with 2 worker processes gives the in-process parameters bit for bit, and others when other labels are dropped', async () => {
    const inProcess = await train('wasm', 0, 5, ['--classes', '10']);
    const workers = await train('wasm', 2, 5, ['--classes', '10']);
    expectSameFinalState(workers, inProcess);
    expect(relativeL2(finalParams(inProcess), finalParams(await train('wasm', 0, 5, ['--classes', '10', '--class-dropout', '0.5'])))).toBeGreaterThan(1e-4);
  }, 300_000);
});

describe('a coordinator killed with SIGKILL and restarted with --resume', () => {
  it('is rejoined by its workers and ends with the parameters of an uninterrupted run', async () => {
    const steps = 8;
    const reference = await train('cpu', 0, steps);
    const dir = path.join(root, 'killed');
    const port = await freePort();
    const coordinatorArgs = ['coordinator', ...TINY, '--backend', 'cpu', '--steps', String(steps), '--bind', `tcp://127.0.0.1:${port}`,
      '--checkpoint-dir', dir, '--checkpoint-every', '1', '--min-workers', '2', '--metrics-port', '0'];
    const workers = [0, 1].map((i) => startDdpm(['worker', '--connect', `tcp://127.0.0.1:${port}`, '--name', `w${i}`, '--backend', 'cpu', '--coordinator-timeout', '1']));
    const first = startDdpm(coordinatorArgs);
    await waitFor(() => fs.existsSync(path.join(dir, 'step-00000003')), 90_000, 'the checkpoint of step 3');
    first.child.kill('SIGKILL');
    await waitExit(first, 10_000);
    const second = startDdpm([...coordinatorArgs, '--resume']);
    const { code } = await waitExit(second, 120_000);
    expect(code).toBe(0);
    expect(second.output()).toMatch(/resumed from .*step-0000000[3-8] at step [3-8]/);
    expect(Buffer.compare(finalBytes(dir, 'model.bin'), finalBytes(reference, 'model.bin'))).toBe(0);
    expect(Buffer.compare(finalBytes(dir, 'ema.bin'), finalBytes(reference, 'ema.bin'))).toBe(0);
    for (const w of workers) expect((await waitExit(w, 20_000)).code).toBe(0);
  }, 240_000);
});

describe.each(['float16', 'bfloat16'])('--transport-dtype %s', (dtype) => {
  it('trains through a worker to parameters close to, but not equal to, the float32 run', async () => {
    const reference = await train('wasm', 1, 5);
    const dir = path.join(root, `wasm-${dtype}`);
    const p = startDdpm(['train', ...TINY, '--backend', 'wasm', '--steps', '5', '--workers', '1', '--transport-dtype', dtype, '--checkpoint-dir', dir]);
    expect((await waitExit(p, 150_000)).code).toBe(0);
    const a = finalParams(dir);
    const b = finalParams(reference);
    expect(relativeL2(a, b)).toBeGreaterThan(0);
    expect(relativeL2(a, b)).toBeLessThan(0.05);
  }, 160_000);

  it('gives the same bits when the update threads encode the parameters for the workers (--update-threads 3)', async () => {
    const dirs = await Promise.all([1, 3].map(async (threads) => {
      const dir = path.join(root, `wasm-${dtype}-update-threads-${threads}`);
      const p = startDdpm(['train', ...TINY, '--backend', 'wasm', '--steps', '4', '--workers', '1', '--transport-dtype', dtype, '--update-threads', String(threads), '--checkpoint-dir', dir]);
      expect((await waitExit(p, 150_000)).code).toBe(0);
      return dir;
    }));
    expectSameFinalState(dirs[1], dirs[0]);
  }, 160_000);
});
