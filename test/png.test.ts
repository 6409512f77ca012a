import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { encodePng, imageGrid } from '../src/data/png';
import { writeFileAtomic } from '../src/util/fsync';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ddpm-png-test-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('encodePng', () => {
  test('grey round-trips exactly through pngjs', () => {
    const width = 7;
    const height = 5;
    const pixels = Uint8Array.from({ length: width * height }, (_, i) => (i * 53) % 256);
    const decoded = PNG.sync.read(encodePng(pixels, width, height, 1));
    expect(decoded).toMatchObject({ width, height, colorType: 0 });
    for (let p = 0; p < width * height; p++) {
      expect(Array.from(decoded.data.subarray(p * 4, p * 4 + 4))).toEqual([pixels[p], pixels[p], pixels[p], 255]);
    }
  });

  test('RGB round-trips exactly through pngjs, also from a view into a larger buffer', () => {
    const width = 6;
    const height = 4;
    const backing = Uint8Array.from({ length: 10 + width * height * 3 }, (_, i) => (i * 31 + 7) % 256);
    const pixels = backing.subarray(10);
    const decoded = PNG.sync.read(encodePng(pixels, width, height, 3));
    expect(decoded).toMatchObject({ width, height, colorType: 2 });
    for (let p = 0; p < width * height; p++) {
      expect(Array.from(decoded.data.subarray(p * 4, p * 4 + 4))).toEqual([...pixels.subarray(p * 3, p * 3 + 3), 255]);
    }
  });

  test('rejects a length that does not match the size', () => {
    expect(() => encodePng(new Uint8Array(10), 2, 2, 3)).toThrow('expected 12 bytes for 2x2x3, got 10');
    expect(() => encodePng(new Uint8Array(0), 0, 2, 1)).toThrow('got 0x2');
  });
});

describe('imageGrid', () => {
  test('places image k at row floor(k / cols), column k % cols, with padding', () => {
    // 5 images of 3x4 (height x width), grey: cols = 3, rows = 2.
    const n = 5;
    const height = 3;
    const width = 4;
    const padding = 2;
    // Image k, pixel (y, x) holds a distinct value in [-1, 1] whose byte is 10k + 4y + x.
    const images = new Float32Array(n * height * width);
    for (let k = 0; k < n; k++)
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) images[(k * height + y) * width + x] = (10 * k + 4 * y + x) / 127.5 - 1;
    const grid = imageGrid(images, n, height, width, 1, padding);
    expect(grid).toMatchObject({ width: 3 * (4 + 2) + 2, height: 2 * (3 + 2) + 2, channels: 1 });
    expect(grid.pixels.length).toBe(20 * 12);
    const at = (gy: number, gx: number): number => grid.pixels[gy * grid.width + gx];
    for (let k = 0; k < n; k++) {
      const top = padding + Math.floor(k / 3) * (height + padding);
      const left = padding + (k % 3) * (width + padding);
      for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) expect(at(top + y, left + x)).toBe(10 * k + 4 * y + x);
    }
    // Image 4, pixel (1, 2) lands at grid row 2 + 5 + 1 = 8, column 2 + 6 + 2 = 10.
    expect(at(8, 10)).toBe(46);
    // Padding and the empty sixth cell are black.
    expect(at(0, 0)).toBe(0);
    expect(at(2, 6)).toBe(0);
    expect(at(8, 16)).toBe(0);
  });

  test('maps [-1, 1] to bytes with rounding and clipping, NaN to 0, RGB kept per channel', () => {
    const values = [-1, 1, 0, 2, -3, NaN, 0.5, -0.5, 0.999];
    const images = Float32Array.from(values); // 1 image, 1x3, 3 channels
    const grid = imageGrid(images, 1, 1, 3, 3, 0);
    expect(grid).toMatchObject({ width: 3, height: 1, channels: 3 });
    expect(Array.from(grid.pixels)).toEqual([0, 255, 128, 255, 0, 0, 191, 64, 255]);
  });

  test('single image with default padding 2', () => {
    const grid = imageGrid(new Float32Array(4).fill(1), 1, 2, 2, 1);
    expect(grid).toMatchObject({ width: 6, height: 6 });
    expect(grid.pixels[2 * 6 + 2]).toBe(255);
    expect(grid.pixels[1 * 6 + 2]).toBe(0);
  });

  test('rejects mismatched lengths and channel counts with the bad value', () => {
    expect(() => imageGrid(new Float32Array(5), 1, 2, 2, 1)).toThrow('got 5');
    expect(() => imageGrid(new Float32Array(8), 1, 2, 2, 2)).toThrow('got 2');
    expect(() => imageGrid(new Float32Array(0), 0, 2, 2, 1)).toThrow('n must be a positive integer, got 0');
  });
});

describe('writeFileAtomic', () => {
  test('writes and replaces the file, leaving no temp files', () => {
    const dir = join(root, 'atomic');
    mkdirSync(dir);
    const path = join(dir, 'grid.png');
    writeFileAtomic(path, Buffer.from([1, 2, 3]));
    expect(Array.from(readFileSync(path))).toEqual([1, 2, 3]);
    writeFileAtomic(path, 'text ✓');
    expect(readFileSync(path, 'utf8')).toBe('text ✓');
    writeFileAtomic(path, new Uint8Array(0));
    expect(readFileSync(path).length).toBe(0);
    expect(readdirSync(dir)).toEqual(['grid.png']);
  });

  test('on failure rethrows and removes the temp file', () => {
    expect(() => writeFileAtomic(join(root, 'no-such-dir', 'x.png'), 'data')).toThrow(/ENOENT/);
    // Renaming a file over a non-empty directory fails after the temp file was written.
    const dir = join(root, 'target-is-dir');
    mkdirSync(join(dir, 'occupied'), { recursive: true });
    writeFileSync(join(dir, 'occupied', 'keep'), 'x');
    expect(() => writeFileAtomic(join(dir, 'occupied'), 'data')).toThrow();
    expect(readdirSync(dir)).toEqual(['occupied']);
  });
});
