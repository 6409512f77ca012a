/** Local worker processes for `ddpm train --workers N`, on loopback. */
import { ChildProcess, spawn } from 'child_process';
import * as path from 'path';

export interface LocalWorkers {
  stop(): Promise<void>;
}

export function spawnLocalWorkers(n: number, endpoint: string, backend: string, log: (line: string) => void): LocalWorkers {
  const bin = path.resolve(__dirname, '..', '..', 'bin', 'ddpm.js');
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const child = spawn(process.execPath, [bin, 'worker', '--connect', endpoint, '--name', `local-${i}`, '--backend', backend], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, signal) => { if (code !== 0) log(`local worker ${i} exited (${signal ?? code})`); });
    children.push(child);
  }
  return {
    async stop() {
      await Promise.all(children.map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        const kill = setTimeout(() => c.kill('SIGKILL'), 5000);
        c.once('exit', () => { clearTimeout(kill); resolve(); });
        c.kill('SIGTERM');
      })));
    },
  };
}
