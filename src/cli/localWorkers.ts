/** Local worker processes for `ddpm train --workers N|auto`, on loopback. */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { UsageError } from './errors';
import { computesOnOneCore } from '../backend/backend';

/** The most threads --threads and --update-threads accept. */
export const MAX_THREADS = 256;

/** A count flag's value: `auto`, or an integer in [min, max]; anything else is a usage error. */
export function parseCountFlag(flag: string, spec: string, min: number, max = Infinity): 'auto' | number {
  if (spec === 'auto') return 'auto';
  const n = /^\d+$/.test(spec) ? Number(spec) : NaN;
  if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
  const range = max === Infinity ? 'a non-negative integer' : `an integer from ${min} to ${max}`;
  throw new UsageError(`--${flag} must be "auto" or ${range}, got ${spec}`);
}

/**
 * How many local worker processes `--workers` asks for; 0 means the in-process worker. `auto`
 * runs one process per core on a one-core backend, but no more than a step has units to share
 * out, and none on one core (a process of its own would only add transport).
 */
export function resolveLocalWorkers(spec: string, backend: string, cores: number, unitsPerStep: number): number {
  const n = parseCountFlag('workers', spec, 0);
  if (n !== 'auto') return n;
  if (!computesOnOneCore(backend)) return 0;
  const perCore = Math.min(cores, unitsPerStep);
  return perCore <= 1 ? 0 : perCore;
}

/** `ddpm worker --threads`: auto is one per core on a one-core backend, else 1. */
export function resolveComputeThreads(spec: string, backend: string, cores: number): number {
  const n = parseCountFlag('threads', spec, 1, MAX_THREADS);
  if (n !== 'auto') return n;
  return computesOnOneCore(backend) ? Math.max(1, cores) : 1;
}

/**
 * The CPU limit of this process's cgroup, in whole cores (rounded up), or undefined if there is
 * none: containers (Docker --cpus, Kubernetes limits) see every core of the host in
 * os.availableParallelism() but may use only their quota. cgroup v2 (cpu.max: "QUOTA PERIOD" or
 * "max PERIOD"), then v1 (cpu.cfs_quota_us, -1 for none, and cpu.cfs_period_us).
 */
export function cgroupCpuLimit(read: (file: string) => string | undefined = readQuiet): number | undefined {
  const v2 = read('/sys/fs/cgroup/cpu.max')?.trim().split(/\s+/);
  if (v2 && v2.length === 2) return v2[0] === 'max' ? undefined : cores(Number(v2[0]), Number(v2[1]));
  const quota = read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us');
  const period = read('/sys/fs/cgroup/cpu/cpu.cfs_period_us');
  return quota === undefined || period === undefined ? undefined : cores(Number(quota), Number(period));
}

function cores(quota: number, period: number): number | undefined {
  return quota > 0 && period > 0 ? Math.max(1, Math.ceil(quota / period)) : undefined;
}

function readQuiet(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Cores this process may use: the scheduler's count, capped by a container's CPU limit. */
export function availableCores(): number {
  return Math.min(os.availableParallelism(), cgroupCpuLimit() ?? Infinity);
}

export interface LocalWorkers {
  stop(): Promise<void>;
}

export function spawnLocalWorkers(n: number, endpoint: string, backend: string, threads: number, log: (line: string) => void): LocalWorkers {
  const bin = path.resolve(__dirname, '..', '..', 'bin', 'ddpm.js');
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    // `ddpm train --threads` (default 1: the processes already share out the cores).
    // The IPC channel is a lifeline, not for messages: if this process dies, even by SIGKILL, it
    // closes and the worker stops (workerCommand.ts) instead of waiting for a coordinator forever.
    const child = spawn(process.execPath, [bin, 'worker', '--connect', endpoint, '--name', `local-${i}`, '--backend', backend, '--threads', String(threads)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.channel?.unref();
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
