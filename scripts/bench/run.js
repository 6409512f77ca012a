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
const { bundleAndRun, runMain, root } = require('../runBundled');

const BENCHMARKS = ['scaling', 'transport', 'overhead', 'memory', 'stragglers'];
const CHILDREN = ['benchWorker', 'realWorker'];

runMain(async () => {
  const [name, ...args] = process.argv.slice(2);
  if (!BENCHMARKS.includes(name)) {
    console.error(`usage: node scripts/bench/run.js ${BENCHMARKS.join('|')} [--help | flags]`);
    process.exit(2);
  }
  await bundleAndRun({
    // updateThread: the script of the coordinator's update threads, found beside the bundle.
    entryPoints: [...[...BENCHMARKS, ...CHILDREN].map((e) => ({ in: path.join(__dirname, `${e}.ts`), out: e })),
      { in: path.join(root, 'src', 'training', 'updateThread.ts'), out: 'updateThread' }],
    outdir: path.join(root, 'bench-results', '.build'),
    run: `${name}.js`,
    args,
  });
});
