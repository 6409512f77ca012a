import { imageGrid, encodePng } from '../data/png';
import { writeFileAtomic } from '../util/fsync';
import { type UNetConfig, classCount } from '../model/config';

/** A PNG of n images; a class-conditional model's images are in class order (cyclingLabels), one
 * column per class. */
export function writeGrid(file: string, images: Float32Array | Uint8Array, n: number, model: UNetConfig, columns = classCount(model) || undefined): void {
  const grid = imageGrid(images, n, model.imageSize, model.imageSize, model.imageChannels, 2, columns);
  writeFileAtomic(file, encodePng(grid.pixels, grid.width, grid.height, grid.channels));
}
