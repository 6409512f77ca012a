/** SHA-256 of a typed array's bytes (its view, not its whole buffer), as lowercase hex: the
 * checksums of checkpoint manifests, --init-from files and sample directories' weights. */
import { createHash } from 'crypto';

export function sha256Hex(data: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
}
