/**
 * RELIABILITY.md with real processes: workers killed (1) or stopped (4) mid-run, too few workers
 * (8), the coordinator killed at each stage of a checkpoint save (10) or sent SIGTERM (15); and
 * the worker's own lifecycle (SIGTERM exits 0). Parameters are compared with an undisturbed run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { eventually, freePort, killAll, startDdpm, waitExit, waitFor } from './helpers/cli';

const TINY = ['--preset', 'tiny', '--backend', 'cpu', '--batch-size', '12', '--unit-size', '1', '--seed', '3', '--lr', '1e-3', '--warmup-steps', '2', '--sample-n', '0', '--log-every', '60'];

let root: string;
beforeAll(() => { root = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-rel-')); });
afterEach(() => killAll());
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const modelBytes = (dir: string) => fs.readFileSync(path.join(dir, fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim(), 'model.bin'));
const reached = (dir: string, step: number) => () => fs.existsSync(path.join(dir, `step-${String(step).padStart(8, '0')}`));

const references = new Map<number, string>();
async function reference(steps: number): Promise<string> {
  const known = references.get(steps);
  if (known) return known;
  const dir = path.join(root, `reference-${steps}`);
  const p = startDdpm(['train', '--workers', '0', ...TINY, '--steps', String(steps), '--checkpoint-dir', dir]);
  expect((await waitExit(p, 120_000)).code).toBe(0);
  references.set(steps, dir);
  return dir;
}

/** `workerTimeout`: the coordinator's --worker-timeout; `coordinatorTimeout`: the workers' --coordinator-timeout. */
async function cluster(name: string, steps: number, workers: number, { workerTimeout = 2, coordinatorTimeout = 1 } = {}) {
  const dir = path.join(root, name);
  const port = await freePort();
  const address = `tcp://127.0.0.1:${port}`;
  const coordinator = startDdpm(['coordinator', ...TINY, '--steps', String(steps), '--bind', address, '--checkpoint-dir', dir,
    '--checkpoint-every', '1', '--min-workers', String(workers), '--metrics-port', '0', '--worker-timeout', String(workerTimeout)]);
  const ws = Array.from({ length: workers }, (_, i) => startDdpm(['worker', '--connect', address, '--name', `${name}-w${i}`, '--backend', 'cpu', '--coordinator-timeout', String(coordinatorTimeout)]));
  return { dir, address, coordinator, workers: ws };
}

describe('a worker killed with SIGKILL mid-run (RELIABILITY 1)', () => {
  it('is detected within the worker timeout, its units are recomputed, and the parameters equal an undisturbed run', async () => {
    const steps = 6;
    const ref = await reference(steps);
    const c = await cluster('kill9', steps, 3);
    await waitFor(reached(c.dir, 2), 90_000, 'step 2');
    c.workers[2].child.kill('SIGKILL');
    expect((await waitExit(c.coordinator, 120_000)).code).toBe(0);
    const out = c.coordinator.output();
    const silent = /worker kill9-w2 dropped: silent for ([\d.]+) s/.exec(out);
    expect(silent).not.toBeNull();
    expect(Number(silent?.[1])).toBeLessThan(4);
    expect(Buffer.compare(modelBytes(c.dir), modelBytes(ref))).toBe(0);
  }, 240_000);
});

describe('a worker whose compute thread dies mid-run', () => {
  it('says so in one line, says goodbye and exits 1; its units are recomputed and the parameters equal an undisturbed run', async () => {
    const steps = 6;
    const ref = await reference(steps);
    const dir = path.join(root, 'thread-crash');
    const address = `tcp://127.0.0.1:${await freePort()}`;
    const coordinator = startDdpm(['coordinator', ...TINY, '--steps', String(steps), '--bind', address, '--checkpoint-dir', dir,
      '--min-workers', '2', '--metrics-port', '0']);
    // One of its two threads ends (exit code 70) on its first unit of step 3.
    const fragile = startDdpm(['worker', '--connect', address, '--name', 'fragile', '--backend', 'cpu', '--threads', '2'], { ...process.env, DDPM_CRASH_AT: 'compute-thread:3' });
    const steady = startDdpm(['worker', '--connect', address, '--name', 'steady', '--backend', 'cpu', '--threads', '1']);
    expect((await waitExit(fragile, 120_000)).code).toBe(1);
    expect(fragile.output()).toContain('worker fragile: compute thread exited (code 70)');
    expect(fragile.output()).not.toMatch(/^\s+at /m);
    expect((await waitExit(coordinator, 120_000)).code).toBe(0);
    expect(coordinator.output()).toContain('worker fragile dropped: left (failed)');
    expect(Buffer.compare(modelBytes(dir), modelBytes(ref))).toBe(0);
    expect((await waitExit(steady, 20_000)).code).toBe(0);
  }, 240_000);
});

describe('a worker stopped with SIGSTOP past its liveness window (RELIABILITY 4)', () => {
  it('is dropped; when continued, what it had queued is discarded and it rejoins cleanly', async () => {
    const steps = 8;
    const ref = await reference(steps);
    const c = await cluster('sigstop', steps, 2);
    await waitFor(reached(c.dir, 2), 90_000, 'step 2');
    c.workers[1].child.kill('SIGSTOP');
    await waitFor(() => /worker sigstop-w1 dropped/.test(c.coordinator.output()), 20_000, 'the stopped worker to be dropped');
    c.workers[1].child.kill('SIGCONT');
    await waitFor(() => (c.coordinator.output().match(/worker sigstop-w1 attached/g) ?? []).length >= 2, 30_000, 'the worker to rejoin');
    expect((await waitExit(c.coordinator, 120_000)).code).toBe(0);
    expect(Buffer.compare(modelBytes(c.dir), modelBytes(ref))).toBe(0);
    for (const w of c.workers) expect((await waitExit(w, 20_000)).code).toBe(0);
  }, 240_000);
});

describe('the coordinator stopped with SIGSTOP past the worker timeout and the transport heartbeat', () => {
  it('drops no worker when continued; workers whose connection dropped register again at once, and the run ends like an undisturbed one', async () => {
    const steps = 8;
    const ref = await reference(steps);
    // Workers wait 60 s for a silent coordinator: registering again can only come from seeing the
    // connection made again. Before, the coordinator dropped both as silent on SIGCONT, and the
    // units whose messages died with the dropped connections waited for the 300 s unit deadline.
    const c = await cluster('pause', steps, 2, { coordinatorTimeout: 60 });
    await waitFor(reached(c.dir, 2), 90_000, 'step 2');
    c.coordinator.child.kill('SIGSTOP');
    // Past --worker-timeout (2 s) and well past the transport heartbeat's 3 s timeout, which the
    // workers' I/O threads must notice while it is stopped.
    await new Promise((resolve) => setTimeout(resolve, 8000));
    c.coordinator.child.kill('SIGCONT');
    expect((await waitExit(c.coordinator, 90_000)).code).toBe(0);
    expect(c.coordinator.output()).not.toMatch(/dropped/);
    for (const w of c.workers) {
      expect(w.output()).toContain('connection to the coordinator dropped and was made again: registering again');
      expect((await waitExit(w, 20_000)).code).toBe(0);
    }
    expect(Buffer.compare(modelBytes(c.dir), modelBytes(ref))).toBe(0);
  }, 240_000);
});

describe('a worker stopped with SIGSTOP past the transport heartbeat but within its liveness window', () => {
  it('is not dropped, nor waited for: its units are backed up on the other worker; it registers again when continued, and the run ends like an undisturbed one', async () => {
    const steps = 8;
    const ref = await reference(steps);
    const c = await cluster('short-stop', steps, 2, { workerTimeout: 30, coordinatorTimeout: 60 });
    await waitFor(reached(c.dir, 2), 90_000, 'step 2');
    const latest = () => Number(/step-(\d+)/.exec(fs.readFileSync(path.join(c.dir, 'latest'), 'utf8'))?.[1]);
    // Past the 3 s ZeroMQ heartbeat timeout: the coordinator's side of the connection closes, and
    // whatever it sent the worker meanwhile is lost.
    c.workers[1].child.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 5000));
    // Steps go on without it: its units are given to the other worker once overdue, and steps are
    // done past the one it stopped in. (Waited for, within the 30 s worker timeout: a busy machine
    // once took over 5 s.)
    // (Seen once, in a fresh clone under full load, not to come within the wait: the coordinator's
    // output goes with the failure, to tell why.)
    await eventually(async () => (/backup on short-stop-w0/.test(c.coordinator.output()) ? true : undefined), 20_000, 'a unit of the stopped worker backed up',
      () => `coordinator:\n${c.coordinator.output().slice(-4000)}`);
    expect(c.coordinator.output()).toMatch(/unit \d+ on short-stop-w1 is [\d.]+ s in \(expected [\d.]+ s\): backup on short-stop-w0/);
    const backedUpIn = Number(/step (\d+): unit \d+ on short-stop-w1/.exec(c.coordinator.output())?.[1]);
    await waitFor(() => latest() >= backedUpIn, 20_000, 'the step with the backup done without the stopped worker');
    c.workers[1].child.kill('SIGCONT');
    await waitFor(() => c.workers[1].output().includes('connection to the coordinator dropped and was made again: registering again'), 30_000, 'the continued worker to register again');
    expect((await waitExit(c.coordinator, 90_000)).code).toBe(0);
    expect(c.coordinator.output()).not.toMatch(/dropped/);
    expect(Buffer.compare(modelBytes(c.dir), modelBytes(ref))).toBe(0);
    for (const w of c.workers) expect((await waitExit(w, 20_000)).code).toBe(0);
  }, 240_000);
});

describe('a worker stopped with SIGSTOP until its units\' backups have ended the run', () => {
  it('when continued, drops the results nobody will read within --coordinator-timeout and goes on waiting for a coordinator, instead of hanging in the send', async () => {
    const steps = 8; // enough left after step 2 for the stopped worker to be given units
    const ref = await reference(steps);
    const c = await cluster('outlived', steps, 2, { workerTimeout: 30, coordinatorTimeout: 2 });
    await waitFor(reached(c.dir, 2), 90_000, 'step 2');
    c.workers[1].child.kill('SIGSTOP');
    // The other worker finishes the run: the stopped one's units are backed up, not waited for.
    expect((await waitExit(c.coordinator, 90_000)).code).toBe(0);
    expect(c.coordinator.output()).toMatch(/unit \d+ on outlived-w1 is [\d.]+ s in \(expected [\d.]+ s\): backup on outlived-w0/);
    expect(Buffer.compare(modelBytes(c.dir), modelBytes(ref))).toBe(0);
    c.workers[1].child.kill('SIGCONT');
    // The unit it was computing ends; its RESULT has no coordinator to go to. An unbounded send
    // held the worker's loop there for good (before, found by bench:stragglers).
    await waitFor(() => /the result of step \d+ unit \d+ could not be sent within 2 s \(coordinator unreachable\): dropped/.test(c.workers[1].output()), 20_000, 'the result to be dropped');
    await waitFor(() => c.workers[1].output().includes('coordinator silent: registering again'), 20_000, 'the worker to wait for a coordinator again');
    c.workers[1].child.kill('SIGTERM');
    expect((await waitExit(c.workers[1], 20_000)).code).toBe(0);
    expect((await waitExit(c.workers[0], 20_000)).code).toBe(0);
  }, 240_000);
});

describe('fewer workers than --min-workers (RELIABILITY 8)', () => {
  it('waits for --start-timeout, then fails with one clear line and exit code 2', async () => {
    const port = await freePort();
    const started = Date.now();
    const p = startDdpm(['coordinator', ...TINY, '--bind', `tcp://127.0.0.1:${port}`, '--checkpoint-dir', path.join(root, 'min'),
      '--min-workers', '2', '--start-timeout', '2', '--metrics-port', '0']);
    const { code } = await waitExit(p, 60_000);
    expect(code).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    const errors = p.output().split('\n').filter((l) => l.startsWith('ddpm: error:'));
    expect(errors).toEqual([expect.stringMatching(/only 0 of --min-workers 2 workers attached after 2 s/)]);
    expect(p.output()).not.toMatch(/\n\s+at /);
  }, 90_000);
});

describe.each(['checkpoint-file-model.bin', 'checkpoint-manifest', 'checkpoint-renamed', 'checkpoint-latest'])(
  'the coordinator killed at crash point %s while saving step 3 (RELIABILITY 10)', (stage) => {
    it('restarts from the newest complete checkpoint, removes leftovers, and ends like an undisturbed run', async () => {
      const steps = 5;
      const ref = await reference(steps);
      const dir = path.join(root, `crash-${stage}`);
      const args = ['train', '--workers', '0', ...TINY, '--steps', String(steps), '--checkpoint-dir', dir, '--checkpoint-every', '1'];
      const crashed = startDdpm(args, { ...process.env, DDPM_CRASH_AT: `${stage}:3` });
      expect((await waitExit(crashed, 120_000)).signal).toBe('SIGKILL');
      const resumed = startDdpm([...args, '--resume']);
      expect((await waitExit(resumed, 120_000)).code).toBe(0);
      const from = /resumed from .*step-(\d+) at step (\d+)/.exec(resumed.output());
      expect(from).not.toBeNull();
      // Only a save whose directory was renamed into place counts as complete.
      expect(Number(from?.[2])).toBe(stage === 'checkpoint-renamed' || stage === 'checkpoint-latest' ? 3 : 2);
      expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
      expect(Buffer.compare(modelBytes(dir), modelBytes(ref))).toBe(0);
    }, 180_000);
  });

describe('SIGTERM to the coordinator (RELIABILITY 15)', () => {
  it('finishes the step, checkpoints, tells the workers and exits 0 within its linger; the workers exit 0', async () => {
    const c = await cluster('sigterm', 10_000, 2);
    await waitFor(reached(c.dir, 2), 90_000, 'step 2');
    const sent = Date.now();
    c.coordinator.child.kill('SIGTERM');
    expect((await waitExit(c.coordinator, 20_000)).code).toBe(0);
    expect(Date.now() - sent).toBeLessThan(15_000);
    const latest = fs.readFileSync(path.join(c.dir, 'latest'), 'utf8').trim();
    const steps = fs.readdirSync(c.dir).filter((n) => n.startsWith('step-')).sort();
    expect(latest).toBe(steps[steps.length - 1]);
    for (const w of c.workers) expect((await waitExit(w, 15_000)).code).toBe(0);
  }, 150_000);
});

describe('a worker', () => {
  it('started before its coordinator connects by itself, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const address = `tcp://127.0.0.1:${port}`;
    const w = startDdpm(['worker', '--connect', address, '--name', 'early', '--backend', 'cpu']);
    await new Promise((r) => setTimeout(r, 1500));
    const c = startDdpm(['coordinator', ...TINY, '--steps', '10000', '--bind', address, '--checkpoint-dir', path.join(root, 'early'), '--metrics-port', '0']);
    await waitFor(() => /worker early attached/.test(c.output()), 60_000, 'the worker to attach');
    // The coordinator logs the attach as it sends WELCOME: a worker stopped before reading it
    // has no run to say goodbye to (the coordinator then drops it by timeout, not as "left").
    await waitFor(() => /joined run/.test(w.output()), 30_000, 'the worker to read its welcome');
    w.child.kill('SIGTERM');
    expect((await waitExit(w, 15_000)).code).toBe(0);
    await waitFor(() => /worker early dropped: left/.test(c.output()), 10_000, 'the coordinator to see it leave');
  }, 120_000);

  it('started by ddpm train stops when that process is killed with SIGKILL, mid-run (no orphans waiting forever)', async () => {
    const { execFileSync } = await import('child_process');
    const t = startDdpm(['train', '--workers', '2', ...TINY, '--steps', '100000', '--checkpoint-dir', path.join(root, 'orphans')]);
    await waitFor(() => (t.output().match(/joined run/g) ?? []).length === 2, 60_000, 'both local workers to join');
    await new Promise((r) => setTimeout(r, 1000)); // into the run: units in flight
    const endpoint = /connecting to (tcp:\/\/127\.0\.0\.1:\d+)/.exec(t.output())![1];
    const workerPids = () => {
      try {
        return execFileSync('pgrep', ['-f', `worker --connect ${endpoint} `], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
      } catch {
        return []; // pgrep exits 1 when nothing matches
      }
    };
    expect(workerPids()).toHaveLength(2);
    t.child.kill('SIGKILL');
    try {
      await waitFor(() => workerPids().length === 0, 15_000, 'the local workers to exit');
    } finally {
      for (const pid of workerPids()) process.kill(pid, 'SIGKILL'); // a failure leaves no orphans either
    }
    // Their last lines may still be in the pipe when their processes are gone.
    await waitFor(() => /worker local-0: the ddpm process that started it is gone: stopping/.test(t.output()), 5_000, 'local-0 to say why it stops');
    await waitFor(() => /worker local-1: stopped after \d+ units/.test(t.output()), 5_000, 'local-1 to say it stopped');
  }, 90_000);

  it('still waiting for a coordinator that never came, exits 0 on SIGTERM ("stopped", not "failed")', async () => {
    const w = startDdpm(['worker', '--connect', `tcp://127.0.0.1:${await freePort()}`, '--name', 'alone', '--backend', 'cpu']);
    await waitFor(() => /connecting to/.test(w.output()), 30_000, 'the worker to start');
    await new Promise((r) => setTimeout(r, 500));
    w.child.kill('SIGTERM');
    expect((await waitExit(w, 15_000)).code).toBe(0);
    expect(w.output()).toMatch(/worker alone: stopped after 0 units/);
  }, 60_000);
});

describe('a checkpoint save that fails mid-run, e.g. a full disk (RELIABILITY 11)', () => {
  it('is reported with a warning and training goes on; a failing final save exits with one error line', async () => {
    const { execFile } = await import('child_process');
    const { DDPM_BIN } = await import('./helpers/cli');
    const dir = path.join(root, 'full-disk');
    // ulimit -f 64: files over 64 KiB fail with EFBIG, as writes fail with ENOSPC on a full disk.
    const cmd = `ulimit -f 64; exec "${process.execPath}" "${DDPM_BIN}" train --workers 0 ${TINY.filter((a, i) => a !== '--log-every' && TINY[i - 1] !== '--log-every').join(' ')} --steps 3 --checkpoint-every 1 --log-format json --log-every 0 --checkpoint-dir "${dir}"`;
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile('bash', ['-c', cmd], { timeout: 120_000 }, (err, out, errOut) => resolve({ code: err ? (err.code as number) : 0, stdout: out, stderr: errOut }));
    });
    expect(stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).step)).toEqual([1, 2, 3]);
    expect(stderr.match(/warning: saving checkpoint step-0000000[123] .*failed.*training continues/g)).toHaveLength(3);
    expect(code).toBe(2);
    expect(stderr.split('\n').filter((l) => l.startsWith('ddpm: error:'))).toEqual([expect.stringMatching(/saving checkpoint step-00000003/)]);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-') || n.startsWith('step-'))).toEqual([]);
  }, 150_000);
});

describe('signals and exposure', () => {
  it('a second SIGTERM exits at once, without waiting for the step or a checkpoint', async () => {
    const dir = path.join(root, 'twice');
    // A step takes seconds on the cpu backend (about 4 s here), the time between the signals a
    // few hundred milliseconds.
    const p = startDdpm(['train', '--workers', '0', ...TINY.filter((a, i) => a !== '--log-every' && TINY[i - 1] !== '--log-every'), '--steps', '100000', '--log-every', '0', '--checkpoint-dir', dir]);
    await waitFor(() => /step 1\//.test(p.output()), 60_000, 'the first step');
    p.child.kill('SIGTERM');
    // Apart, so the kernel does not merge them into one pending signal.
    await waitFor(() => /finishing the current step/.test(p.output()), 30_000, 'the first signal to be seen');
    p.child.kill('SIGTERM');
    expect((await waitExit(p, 30_000)).code).toBe(130);
    expect(p.output()).toMatch(/SIGTERM again: exiting now/);
    // Neither the step nor the checkpoint a first SIGTERM ends with was waited for.
    expect(fs.existsSync(path.join(dir, 'latest'))).toBe(false);
  }, 120_000);

  it('warns about plaintext only for addresses reachable beyond this machine', async () => {
    const { isLoopback } = await import('../src/cli/coordinatorCommand');
    for (const a of ['tcp://127.0.0.1:5555', 'tcp://localhost:5555', 'tcp://[::1]:5555', 'ipc:///tmp/x', 'inproc://x']) expect([a, isLoopback(a)]).toEqual([a, true]);
    for (const a of ['tcp://0.0.0.0:5555', 'tcp://10.1.2.3:5555', 'tcp://*:5555', 'tcp://eth0:5555']) expect([a, isLoopback(a)]).toEqual([a, false]);
  });
});
