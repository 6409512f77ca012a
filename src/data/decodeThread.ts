/** A decode thread (decodeThreads.ts): chunks of image files decoded and fitted, in arrival order. */
import { serveThread } from '../util/threadPool';
import type { FitTarget } from './fit';
import { decodeChunk } from './imageFile';
import type { DecodeReply } from './decodeThreads';
import { DataError } from './types';

void serveThread<string[], DecodeReply>(async (init) => {
  const target = init as FitTarget;
  return {
    info: 'decode',
    call: async (paths) => {
      try {
        const chunk = await decodeChunk(paths, target);
        return { value: chunk, transfer: [chunk.pixels.buffer as ArrayBuffer] };
      } catch (err) {
        if (err instanceof DataError) return { value: { dataError: err.message } };
        throw err;
      }
    },
  };
});
