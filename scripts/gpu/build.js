#!/usr/bin/env node
/**
 * `npm run gpu:build`: self-contained files for a GPU host that has no Node.js packages, run there
 * by ../shared/gpu/pack-runtime.sh's run.sh, which lays the Dawn addon ('webgpu') beside them:
 * - .gpu-build/: the step and kernel benchmarks and the kernel check (scripts/gpu/device-bench.sh);
 * - .gpu-train/ (`npm run gpu:build -- --train`, after `npm run build`): the `ddpm` command itself,
 *   its worker_threads scripts beside it (src/util/threadScript.ts finds them there), and the
 *   ZeroMQ addon this machine loads, with MNIST as an .npz (scripts/gpu/device-train.sh).
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..', '..');
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
  // Program class names label the dispatch counts in the benchmark's output.
  keepNames: true,
  // src/backend/backend.ts loads optional native packages through eval('require') on purpose.
  logOverride: { 'direct-eval': 'silent' },
};

function fail(err) {
  console.error(err.message);
  process.exit(1);
}

function benchmarks() {
  return esbuild.build({
    ...common,
    entryPoints: [
      { in: path.join(root, 'scripts', 'step-bench', 'stepBench.ts'), out: 'stepBench' },
      { in: path.join(root, 'scripts', 'step-bench', 'kernelBench.ts'), out: 'kernelBench' },
      { in: path.join(root, 'scripts', 'gpu', 'kernelCheck.ts'), out: 'kernelCheck' },
    ],
    outdir: path.join(root, '.gpu-build'),
    external: ['webgpu'],
  }).then(() => console.log('wrote .gpu-build/{stepBench,kernelBench,kernelCheck}.js'));
}

/** Copies what zeromq loads at run time: its JS, and the addon it loads on this machine (the GPU
 * host runs this machine's node binary). */
function copyZeromq(out) {
  require(path.join(root, 'node_modules', 'zeromq'));
  const addon = Object.keys(require.cache).find((f) => f.endsWith('.node') && f.includes(`${path.sep}zeromq${path.sep}`));
  if (!addon) throw new Error('zeromq loaded no addon');
  const modules = path.join(root, 'node_modules');
  const files = [
    'zeromq/package.json', 'zeromq/build/manifest.json', path.relative(modules, addon),
    'cmake-ts/package.json', 'cmake-ts/build/loader.js',
    ...fs.readdirSync(path.join(modules, 'zeromq', 'lib')).filter((f) => f.endsWith('.js')).map((f) => `zeromq/lib/${f}`),
  ];
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(out, 'node_modules', f)), { recursive: true });
    fs.copyFileSync(path.join(modules, f), path.join(out, 'node_modules', f));
  }
}

function train() {
  const dist = path.join(root, 'dist');
  if (!fs.existsSync(path.join(dist, 'cli', 'main.js'))) throw new Error('dist/ not built: run npm run build first');
  const out = path.join(root, '.gpu-train');
  fs.rmSync(out, { recursive: true, force: true });
  const threads = [['training', 'updateThread'], ['sampling', 'gridThread'], ['sampling', 'sampleThread'], ['worker', 'computeThread'], ['data', 'decodeThread']];
  return esbuild.build({
    ...common,
    entryPoints: [
      { in: path.join(root, 'bin', 'ddpm.js'), out: 'ddpm' },
      ...threads.map(([dir, name]) => ({ in: path.join(dist, dir, `${name}.js`), out: name })),
    ],
    outdir: out,
    external: ['webgpu', 'zeromq'],
  }).then(() => {
    copyZeromq(out);
    // The default data, as a file: the mnist package is 41 MB of JSON.
    execFileSync(process.execPath, [path.join(root, 'bin', 'ddpm.js'), 'data', '--data', 'mnist', '--image-size', '28', '--out', path.join(out, 'mnist.npz')], { stdio: 'inherit' });
    console.log('wrote .gpu-train/ (ddpm.js, its thread scripts, zeromq, mnist.npz)');
  });
}

(process.argv.includes('--train') ? Promise.resolve().then(train) : benchmarks()).catch(fail);
