/**
 * One training run in its own Node process (see childProcess.ts for why).
 * Usage: node trainRunChild.js '{"dir": ..., "steps": ..., "resume": ..., "executor": ...}'
 * Prints the TrainOutcome as one JSON line; numbers survive JSON exactly (shortest round-trip form).
 */
import { initBackend } from '../../src/backend/backend';
import { TrainRequest, runTraining } from './trainFixture';

async function main(): Promise<void> {
  await initBackend('cpu');
  const outcome = await runTraining(JSON.parse(process.argv[2]) as TrainRequest);
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
