/** The `ddpm` command line: parse, dispatch, and turn user errors into one line and exit code 2. */
import yargs from 'yargs';
import { scheduleCommand } from './scheduleCommand';
import { modelCommand } from './modelCommand';
import { trainCommand } from './trainCommand';
import { sampleCommand } from './sampleCommand';
import { coordinatorCommand } from './coordinatorCommand';
import { workerCommand } from './workerCommand';
import { keygenCommand } from './keygenCommand';
import { inspectCommand } from './inspectCommand';
import { exportCommand } from './exportCommand';
import { dataCommand } from './dataCommand';
import { EXIT_USER_ERROR, isUserError } from './errors';

function fail(message: string): never {
  process.stderr.write(`ddpm: error: ${message.trim().replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(EXIT_USER_ERROR);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await yargs(argv)
      .scriptName('ddpm')
      .command(trainCommand)
      .command(coordinatorCommand)
      .command(workerCommand)
      .command(sampleCommand)
      .command(inspectCommand)
      .command(exportCommand)
      .command(dataCommand)
      .command(scheduleCommand)
      .command(modelCommand)
      .command(keygenCommand)
      .demandCommand(1, 'name a command')
      // A flag given twice takes its last value, as most command lines do (yargs would pass an
      // array that no option here expects).
      .parserConfiguration({ 'duplicate-arguments-array': false })
      .strict()
      .recommendCommands()
      .fail((msg, err) => {
        if (err) throw err;
        fail(`${msg} (see ddpm --help)`);
      })
      .help()
      .wrap(Math.min(110, process.stdout.columns ?? 110))
      .parseAsync();
  } catch (err) {
    if (isUserError(err)) fail(err.message);
    throw err;
  }
}
