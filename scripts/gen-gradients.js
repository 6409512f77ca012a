#!/usr/bin/env node
// tfjs-core's CommonJS build registers no gradients (its ESM build does, in
// dist/register_all_gradients.js). Bundle that registration into one CommonJS file at build
// time; it registers into tfjs's global gradient registry, shared with the CommonJS build.
const esbuild = require('esbuild');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const entry = require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js', { paths: [root] });
for (const dir of [path.join(root, 'src', 'backend', 'generated'), path.join(root, 'dist', 'backend', 'generated')]) {
  fs.mkdirSync(dir, { recursive: true });
  esbuild.buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning', outfile: path.join(dir, 'registerGradients.js') });
}
