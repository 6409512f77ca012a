/** fs calls that fail with a one-line DataError naming the path, shared by the loaders. */
import { readdir, readFile, stat } from 'node:fs/promises';
import { DataError } from './types';

/** Turns a failed fs call into the short phrase used after `<source>: ` in a DataError. */
export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'ENOTDIR':
      return 'not a directory';
    case 'EISDIR':
      return 'is a directory, expected a file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    default:
      return `cannot read: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** `source` is what the error message names, e.g. `idx:/data/train.gz`. */
export async function readFileOrThrow(path: string, source: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new DataError(`${source}: ${describeFsError(err)}`);
  }
}

export async function requireDirectory(dir: string, source: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch (err) {
    throw new DataError(`${source}: ${describeFsError(err)}`);
  }
  if (!isDirectory) throw new DataError(`${source}: not a directory`);
}

/** Entry names of dir (files and subdirectories alike). */
export async function listDirectoryOrThrow(dir: string, source: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    throw new DataError(`${source}: ${describeFsError(err)}`);
  }
}
