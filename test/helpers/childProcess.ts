/**
 * Runs test helpers written in TypeScript as plain Node child processes. Two reasons to leave Jest's
 * process: a limit or a private mount that must apply to one process only, and speed: inside Jest's
 * vm context every global lookup goes through the context's interceptor, which makes tfjs's cpu
 * kernels (TensorBuffer.get's `typeof Symbol` in tslib's __values) about 10x slower than in Node.
 */
import * as path from 'path';
import { execFile } from 'child_process';
import { buildSync } from 'esbuild';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** Bundles test/helpers/ENTRY (a .ts file) and the project sources it imports into OUT_DIR; returns the .js path.
 * Packages stay external and resolve from the repository's node_modules (see childEnv). */
export function bundleHelper(entry: string, outDir: string): string {
  const outfile = path.join(outDir, `${path.basename(entry, '.ts')}.js`);
  buildSync({
    entryPoints: [path.join(__dirname, entry)], bundle: true, platform: 'node', target: 'node20', format: 'cjs',
    packages: 'external', outfile, logLevel: 'error',
  });
  return outfile;
}

/** The environment for a bundled helper: node_modules of this repository on NODE_PATH. */
export function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, NODE_PATH: path.join(REPO_ROOT, 'node_modules') };
}

/** Runs `node SCRIPT ARGS...`; resolves with its stdout, rejects with its stderr on a non-zero exit. */
export function runNode(script: string, args: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, ...args], { env: childEnv(), timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(script)} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}
