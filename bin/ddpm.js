#!/usr/bin/env node
// A reader closing the pipe (`ddpm schedule | head`) is not an error.
process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(0); throw err; });
let settled = false;
require('../dist/cli/main.js').main(process.argv.slice(2)).then(() => { settled = true; }, (err) => {
  settled = true;
  // Not a user error (those exit 2 inside main): a bug, so show the stack.
  console.error(err);
  process.exit(1);
});
// Node exits with code 0 when nothing is left to wait for, even while the command still awaits
// (a promise that nothing will settle): that is a bug too, never a success.
process.on('beforeExit', () => {
  if (settled) return;
  console.error('ddpm: internal error: the command stopped before it finished (nothing left to wait for)');
  process.exit(70);
});
