#!/usr/bin/env node
// A reader closing the pipe (`ddpm schedule | head`) is not an error.
process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(0); throw err; });
require('../dist/cli/main.js').main(process.argv.slice(2)).catch((err) => {
  // Not a user error (those exit 2 inside main): a bug, so show the stack.
  console.error(err);
  process.exit(1);
});
