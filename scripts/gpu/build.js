#!/usr/bin/env node
/**
 * `npm run gpu:build`: the step and kernel benchmarks and the kernel check as self-contained
 * files, .gpu-build/stepBench.js, kernelBench.js and kernelCheck.js, for a GPU host that has no Node.js packages:
 * everything is bundled except the Dawn addon ('webgpu'), which ../shared/gpu/pack-runtime.sh's
 * run.sh lays beside the bundle. scripts/gpu/device-bench.sh runs them there.
 */
'use strict';
const path = require('path');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..', '..');
esbuild.build({
  entryPoints: [
    { in: path.join(root, 'scripts', 'step-bench', 'stepBench.ts'), out: 'stepBench' },
    { in: path.join(root, 'scripts', 'step-bench', 'kernelBench.ts'), out: 'kernelBench' },
    { in: path.join(root, 'scripts', 'gpu', 'kernelCheck.ts'), out: 'kernelCheck' },
  ],
  outdir: path.join(root, '.gpu-build'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['webgpu'],
  logLevel: 'warning',
  // Program class names label the dispatch counts in the benchmark's output.
  keepNames: true,
  // src/backend/backend.ts loads optional native packages through eval('require') on purpose.
  logOverride: { 'direct-eval': 'silent' },
}).then(() => console.log(`wrote ${path.relative(process.cwd(), path.join(root, '.gpu-build'))}/{stepBench,kernelBench,kernelCheck}.js`), (err) => {
  console.error(err.message);
  process.exit(1);
});
