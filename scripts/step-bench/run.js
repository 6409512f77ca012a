#!/usr/bin/env node
/**
 * `npm run bench:step -- [flags]`: bundles scripts/step-bench/stepBench.ts (and the src/ modules it
 * imports, from source: no `npm run build` needed) with esbuild into bench-results/.build-step/,
 * npm packages left external, and runs it in a fresh Node with --expose-gc. `--help` lists flags;
 * `--kernels` runs kernelBench.ts (single-kernel GFLOP/s) instead.
 */
'use strict';
const path = require('path');
const { bundleAndRun, runMain, root } = require('../runBundled');

runMain(async () => {
  // `--kernels`: the kernel-level timings (kernelBench.ts) instead of the step benchmark.
  const args = process.argv.slice(2);
  await bundleAndRun({
    // computeThread.ts: the script of --threads' worker_threads, found beside the bundle.
    entryPoints: [
      { in: path.join(__dirname, 'stepBench.ts'), out: 'stepBench' },
      { in: path.join(__dirname, 'kernelBench.ts'), out: 'kernelBench' },
      { in: path.join(root, 'src', 'worker', 'computeThread.ts'), out: 'computeThread' },
    ],
    outdir: path.join(root, 'bench-results', '.build-step'),
    run: args.includes('--kernels') ? 'kernelBench.js' : 'stepBench.js',
    args: args.filter((a) => a !== '--kernels'),
    env: { ...process.env, STEP_BENCH_DIR: __dirname },
  });
});
