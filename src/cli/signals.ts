/** SIGTERM/SIGINT: the first asks for a clean stop; a second one exits at once. */
export function onStopSignals(stop: (signal: NodeJS.Signals) => void, log: (line: string) => void): () => void {
  let received = 0;
  const handler = (signal: NodeJS.Signals) => {
    received++;
    if (received === 1) {
      log(`${signal}: finishing the current step, checkpointing and exiting (send again to exit at once)`);
      stop(signal);
    } else {
      log(`${signal} again: exiting now`);
      process.exit(130);
    }
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}
