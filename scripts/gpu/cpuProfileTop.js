#!/usr/bin/env node
/**
 * Where the host's time goes in a V8 CPU profile (node --cpu-prof): the functions with the most
 * self time and the most total time (a sample counts once for each distinct function on its
 * stack). Plain Node, no packages, so it runs on a GPU host beside the bundled benchmarks:
 *
 *   node cpuProfileTop.js FILE.cpuprofile [N]
 */
'use strict';
const fs = require('fs');
const path = require('path');

const [file, nArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: cpuProfileTop.js FILE.cpuprofile [N]');
  process.exit(2);
}
const top = Number(nArg ?? 40);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n) => {
  const f = n.callFrame;
  // A native function (Dawn's bindings among them) has neither name nor file: name its caller.
  if (!f.functionName && !f.url && parent.has(n.id)) return `(native) from ${label(byId.get(parent.get(n.id)))}`;
  return `${f.functionName || '(anonymous)'} ${f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
};

const self = new Map();
const total = new Map();
let all = 0;
profile.samples.forEach((id, i) => {
  const dt = (profile.timeDeltas[i] ?? 0) / 1000;
  all += dt;
  const leaf = byId.get(id);
  self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur));
    if (seen.has(l)) continue;
    seen.add(l);
    total.set(l, (total.get(l) ?? 0) + dt);
  }
});
const print = (title, m) => {
  console.log(`| ${title} | ms | share |\n|---|---|---|`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`| ${k} | ${v.toFixed(1)} | ${((100 * v) / all).toFixed(1)}% |`);
};
console.log(`${path.basename(file)}: ${all.toFixed(0)} ms sampled`);
print('self time', self);
print('total time', total);
