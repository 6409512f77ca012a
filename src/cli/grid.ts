import { encodePng, gridLayout, imageGrid } from '../data/png';
import { writeFileAtomic } from '../util/fsync';
import { type UNetConfig, classCount } from '../model/config';

/** Pixels around and between a grid's images. */
export const GRID_PADDING = 2;

/** A PNG of n images; a class-conditional model's images are in class order (cyclingLabels), one
 * column per class. */
export function encodeGrid(images: Float32Array | Uint8Array, n: number, model: UNetConfig, columns = classCount(model) || undefined): Buffer {
  const grid = imageGrid(images, n, model.imageSize, model.imageSize, model.imageChannels, GRID_PADDING, columns);
  return encodePng(grid.pixels, grid.width, grid.height, grid.channels);
}

/** encodeGrid's PNG, written atomically. */
export function writeGrid(file: string, images: Float32Array | Uint8Array, n: number, model: UNetConfig, columns?: number): void {
  writeFileAtomic(file, encodeGrid(images, n, model, columns));
}

/** Bytes of the pixels of writeGrid's grid (to refuse one too large before sampling). */
export function gridBytes(n: number, model: UNetConfig, columns = classCount(model) || undefined): number {
  const { width, height } = gridLayout(n, model.imageSize, model.imageSize, GRID_PADDING, columns);
  return width * height * model.imageChannels;
}
