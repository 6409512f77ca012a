/**
 * Shared by the benchmark runners: bundles TypeScript entry points (and the src/ modules they
 * import, from source, so no `npm run build` is needed) with esbuild, npm packages left external,
 * then runs one of them in a fresh Node with --expose-gc, forwarding signals and the exit code.
 */
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..');

async function bundleAndRun({ entryPoints, outdir, run, args, env }) {
  await esbuild.build({
    entryPoints,
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
  const child = spawn(process.execPath, ['--expose-gc', '--enable-source-maps', path.join(outdir, run), ...args], {
    stdio: 'inherit', cwd: root, env: env ?? process.env,
  });
  const forward = (sig) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 1));
}

function runMain(main) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

module.exports = { bundleAndRun, runMain, root };
