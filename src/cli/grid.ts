import { imageGrid, encodePng } from '../data/png';
import { writeFileAtomic } from '../util/fsync';
import type { UNetConfig } from '../model/config';

export function writeGrid(file: string, images: Float32Array, n: number, model: UNetConfig): void {
  const grid = imageGrid(images, n, model.imageSize, model.imageSize, model.imageChannels);
  writeFileAtomic(file, encodePng(grid.pixels, grid.width, grid.height, grid.channels));
}
