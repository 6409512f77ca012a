#!/usr/bin/env node
/**
 * Runs one benchmark: `node scripts/bench/run.js NAME [flags]`. Bundles scripts/bench/*.ts (and the
 * src/ modules they import, compiled from source, so no `npm run build` is needed) with esbuild into
 * bench-results/.build/, npm packages left external, then runs bench-results/.build/NAME.js in a
 * fresh Node with --expose-gc. Child processes (workers, transport peers) are entry points of the
 * same build. Results: a table on stdout and bench-results/NAME.json.
 */
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const esbuild = require('esbuild');

const BENCHMARKS = ['scaling', 'transport', 'overhead', 'memory'];
const CHILDREN = ['benchWorker', 'realWorker'];

async function main() {
  const [name, ...args] = process.argv.slice(2);
  if (!BENCHMARKS.includes(name)) {
    console.error(`usage: node scripts/bench/run.js ${BENCHMARKS.join('|')} [--help | flags]`);
    process.exit(2);
  }
  const root = path.resolve(__dirname, '..', '..');
  const outdir = path.join(root, 'bench-results', '.build');
  await esbuild.build({
    entryPoints: [...BENCHMARKS, ...CHILDREN].map((e) => path.join(__dirname, `${e}.ts`)),
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'warning',
    // src/backend/backend.ts loads optional native packages through eval('require') on purpose.
    logOverride: { 'direct-eval': 'silent' },
  });
  const child = spawn(process.execPath, ['--expose-gc', '--enable-source-maps', path.join(outdir, `${name}.js`), ...args], { stdio: 'inherit', cwd: root });
  const forward = (sig) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 1));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
