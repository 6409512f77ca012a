/** fs calls that fail with a one-line DataError naming the path, shared by the loaders. */
import { open, readdir, readFile, stat } from 'node:fs/promises';
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

/** The whole file, in pieces: Node's readFile stops at 2 GiB, a Buffer holds up to 4 GiB (the
 * most a zip without ZIP64, hence an .npz here, holds). */
export async function readLargeFileOrThrow(path: string, source: string): Promise<Buffer> {
  const PIECE = 1 << 30;
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      const out = Buffer.allocUnsafe(size);
      for (let at = 0; at < size;) {
        const { bytesRead } = await file.read(out, at, Math.min(PIECE, size - at), at);
        if (bytesRead === 0) throw new Error(`the file ended at byte ${at} of ${size}`);
        at += bytesRead;
      }
      return out;
    } finally {
      await file.close();
    }
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
