#!/usr/bin/env node
/**
 * `npm run bench:step -- [flags]`: bundles scripts/step-bench/stepBench.ts (and the src/ modules it
 * imports, from source: no `npm run build` needed) with esbuild into bench-results/.build-step/,
 * npm packages left external, and runs it in a fresh Node with --expose-gc. `--help` lists flags;
 * `--kernels` runs kernelBench.ts (single-kernel GFLOP/s) instead.
 */
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const esbuild = require('esbuild');

async function main() {
  const root = path.resolve(__dirname, '..', '..');
  const outdir = path.join(root, 'bench-results', '.build-step');
  await esbuild.build({
    entryPoints: [path.join(__dirname, 'stepBench.ts'), path.join(__dirname, 'kernelBench.ts')],
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'error',
  });
  // `--kernels`: the kernel-level timings (kernelBench.ts) instead of the step benchmark.
  const args = process.argv.slice(2);
  const entry = args.includes('--kernels') ? 'kernelBench.js' : 'stepBench.js';
  const child = spawn(process.execPath, ['--expose-gc', '--enable-source-maps', path.join(outdir, entry), ...args.filter((a) => a !== '--kernels')], {
    stdio: 'inherit',
    cwd: root,
    env: { ...process.env, STEP_BENCH_DIR: __dirname },
  });
  const forward = (sig) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 1));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
