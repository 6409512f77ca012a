/**
 * Closing a role's threads, in real processes: the update threads and a worker's beacon thread are
 * unreferenced (they must never keep a finished process alive), so closing them must reference
 * them while it waits. Otherwise, with nothing else pending, Node exits mid-close with code 0 and
 * what the caller does next never runs: `ddpm train` on webgpu exited 0 after its first step
 * failed, with no error and no step trained. Runs the built code (dist/), as `ddpm` does.
 */
import { execFile } from 'child_process';
import * as path from 'path';

const DIST = path.resolve(__dirname, '..', 'dist');

/** Runs `node -e CODE`: its exit code and stdout. */
function runScript(code: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['-e', code], { timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout });
    });
  });
}

/** A failure, then the thread's close in a finally, then the caller's handling of the failure. */
function afterFailure(setUp: string, close: string): string {
  return `${setUp}
(async () => {
  try { throw new Error('the step failed'); } finally { ${close}; console.log('closed'); }
})().catch((err) => { console.log('caught: ' + err.message); process.exitCode = 3; });`;
}

describe('closing threads while a failure propagates', () => {
  it('UpdateThreads.close: the caller sees the failure and the exit code it set', async () => {
    const r = await runScript(afterFailure(`
const { UpdateThreads, shareOptimizerState } = require(${JSON.stringify(path.join(DIST, 'training', 'updateThreads.js'))});
const { initialOptimizerState } = require(${JSON.stringify(path.join(DIST, 'training', 'optimizer.js'))});
const threads = new UpdateThreads(3, shareOptimizerState(initialOptimizerState(new Float32Array(4096))), new Float32Array(new SharedArrayBuffer(4096 * 4)));`,
    'await threads.close()'));
    expect(r).toEqual({ code: 3, stdout: 'closed\ncaught: the step failed\n' });
  });

  it('a beacon\'s stop: the same', async () => {
    const r = await runScript(afterFailure(`
const { startBeacon } = require(${JSON.stringify(path.join(DIST, 'transport', 'beacon.js'))});
const beacon = startBeacon({ address: 'tcp://127.0.0.1:9', routingId: 'w', intervalMs: 50 });`,
    'await beacon.stop()'));
    expect(r).toEqual({ code: 3, stdout: 'closed\ncaught: the step failed\n' });
  });
});
