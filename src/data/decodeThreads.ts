/** images:DIR's decode threads (decodeThread.ts): chunks of files decoded and fitted at once on
 * several cores; a chunk goes to the thread with the fewest waiting. */
import { threadScript } from '../util/threadScript';
import { ThreadPool } from '../util/threadPool';
import type { FitTarget } from './fit';
import type { DecodedChunk } from './imageFile';
import { DataError } from './types';

/** A chunk's pixels, or the one-line DataError that stopped it (other errors fail the call). */
export type DecodeReply = DecodedChunk | { dataError: string };

export class DecodeThreads {
  private constructor(private readonly pool: ThreadPool<string[], DecodeReply>) {}

  static async start(k: number, target: FitTarget): Promise<DecodeThreads> {
    const script = threadScript(__dirname, 'data', 'decodeThread');
    return new DecodeThreads(await ThreadPool.start<string[], DecodeReply>(script, k, target, 'decode thread'));
  }

  async decode(paths: string[]): Promise<DecodedChunk> {
    const reply = await this.pool.call(paths);
    if ('dataError' in reply) throw new DataError(reply.dataError);
    return reply;
  }

  stop(): Promise<void> {
    return this.pool.dispose();
  }
}
