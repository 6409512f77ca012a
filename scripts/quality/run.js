#!/usr/bin/env node
/**
 * `node scripts/quality/run.js [flags]` (npm run quality:digits): bundles scripts/quality/digitScore.ts
 * and the src/ modules it imports (from source, no `npm run build` needed) into bench-results/.build/
 * (beside the benchmarks: scripts/bench/common.ts finds the repository from there), then runs it in a
 * fresh Node with the flags passed through. Caches go to bench-results/.cache/.
 */
'use strict';
const path = require('path');
const { bundleAndRun, runMain, root } = require('../runBundled');

runMain(() => bundleAndRun({
  entryPoints: [path.join(__dirname, 'digitScore.ts')],
  outdir: path.join(root, 'bench-results', '.build'),
  run: 'digitScore.js',
  args: process.argv.slice(2),
}));
