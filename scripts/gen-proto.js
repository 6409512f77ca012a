#!/usr/bin/env node
// Generates static protobuf code (JavaScript + TypeScript declarations) from proto/*.proto into
// src/protocol/generated/ at build time; the generated files are never edited or committed.
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const protos = fs.readdirSync(path.join(root, 'proto')).filter((f) => f.endsWith('.proto')).map((f) => path.join('proto', f));
const outDir = path.join(root, 'src', 'protocol', 'generated');
fs.mkdirSync(outDir, { recursive: true });
if (protos.length === 0) process.exit(0);
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const js = path.join(outDir, 'ddpm.js');
execFileSync(bin('pbjs'), ['-t', 'static-module', '-w', 'commonjs', '--no-verify', '--no-delimited', '--no-convert', '-o', js, ...protos], { cwd: root, stdio: 'inherit' });
execFileSync(bin('pbts'), ['--no-comments', '-o', path.join(outDir, 'ddpm.d.ts'), js], { cwd: root, stdio: 'inherit' });
// tsc copies neither .js sources nor declarations into dist/: place the runtime module there too.
const distDir = path.join(root, 'dist', 'protocol', 'generated');
fs.mkdirSync(distDir, { recursive: true });
fs.copyFileSync(js, path.join(distDir, 'ddpm.js'));
