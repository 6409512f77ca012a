/**
 * A small MNIST CNN in tfjs-core (no tfjs-layers), the judge of scripts/quality/digitScore.ts:
 * conv3x3(16)+relu, maxpool2, conv3x3(32)+relu, maxpool2, dense(64)+relu (the feature layer for
 * the Fréchet distance), dense(10). Initialisation, batch order and shifts come from a seeded Rng,
 * so one backend gives the same weights every time; the weights are cached per image size.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../src/rng/rng';

/** Change when the architecture, data split or training recipe changes: old caches are then retrained. */
export const CLASSIFIER_VERSION = 'cnn16-32-64/split8000-seed1/shift1per14/adam1e-3x10+1e-4x2-b64/v1';
export const FEATURE_DIM = 64;
const SEED = 1;
const BATCH = 64;
/** Learning rate per epoch: at 1e-3 held-out accuracy still jumps by ~0.5% between epochs; two at 1e-4 settle it. */
const LR_BY_EPOCH = [...Array<number>(10).fill(1e-3), 1e-4, 1e-4];

/** n images of size x size x 1 in [-1, 1] with their digit labels. */
export interface LabelledImages {
  n: number;
  size: number;
  x: Float32Array;
  y: Uint8Array;
}

interface CacheFile {
  version: string;
  size: number;
  backend: string;
  trainSeconds: number;
  /** Per variable: shape and little-endian float32 bytes in base64 (exact, unlike decimal JSON). */
  weights: { name: string; shape: number[]; base64: string }[];
}

export class DigitClassifier {
  private constructor(readonly size: number, private readonly vars: Map<string, tf.Variable>) {}

  /** He-normal weights (std sqrt(2 / fan-in); sqrt(1 / fan-in) for the logits), zero biases. */
  static init(size: number, seed = SEED): DigitClassifier {
    const rng = new Rng(seed);
    const pooled = Math.ceil(Math.ceil(size / 2) / 2);
    const shapes: [string, number[], number][] = [
      ['conv1/w', [3, 3, 1, 16], 2 / 9], ['conv1/b', [16], 0],
      ['conv2/w', [3, 3, 16, 32], 2 / (9 * 16)], ['conv2/b', [32], 0],
      ['fc1/w', [pooled * pooled * 32, 64], 2 / (pooled * pooled * 32)], ['fc1/b', [64], 0],
      ['fc2/w', [64, 10], 1 / 64], ['fc2/b', [10], 0],
    ];
    const vars = new Map<string, tf.Variable>();
    for (const [name, shape, variance] of shapes) {
      const values = rng.gaussianFloat32(shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < values.length; i++) values[i] *= Math.sqrt(variance);
      vars.set(name, tf.variable(tf.tensor(values, shape), true));
    }
    return new DigitClassifier(size, vars);
  }

  /** Logits [n, 10] and features [n, 64] (post-ReLU dense(64)). */
  forward(x: tf.Tensor4D): { logits: tf.Tensor2D; features: tf.Tensor2D } {
    const v = (name: string) => this.vars.get(name)!;
    const conv = (h: tf.Tensor4D, layer: string) =>
      tf.maxPool(tf.relu(tf.add(tf.conv2d(h, v(`${layer}/w`) as tf.Tensor4D, 1, 'same'), v(`${layer}/b`))) as tf.Tensor4D, 2, 2, 'same');
    const h = conv(conv(x, 'conv1'), 'conv2');
    const flat = tf.reshape(h, [h.shape[0], -1]) as tf.Tensor2D;
    const features = tf.relu(tf.add(tf.matMul(flat, v('fc1/w') as tf.Tensor2D), v('fc1/b'))) as tf.Tensor2D;
    const logits = tf.add(tf.matMul(features, v('fc2/w') as tf.Tensor2D), v('fc2/b')) as tf.Tensor2D;
    return { logits, features };
  }

  /** Softmax probabilities [n * 10] and features [n * 64] of n images, in batches to bound memory. */
  predict(x: Float32Array, n: number, batch = 256): { probs: Float32Array; features: Float32Array } {
    const per = this.size * this.size;
    const probs = new Float32Array(n * 10);
    const features = new Float32Array(n * FEATURE_DIM);
    for (let start = 0; start < n; start += batch) {
      const count = Math.min(batch, n - start);
      const [p, f] = tf.tidy(() => {
        const input = tf.tensor4d(x.subarray(start * per, (start + count) * per), [count, this.size, this.size, 1]);
        const out = this.forward(input);
        return [tf.softmax(out.logits), out.features];
      });
      probs.set(p.dataSync() as Float32Array, start * 10);
      features.set(f.dataSync() as Float32Array, start * FEATURE_DIM);
      tf.dispose([p, f]);
    }
    return { probs, features };
  }

  accuracy(data: LabelledImages): number {
    const { probs } = this.predict(data.x, data.n);
    let right = 0;
    for (let i = 0; i < data.n; i++) if (argmax(probs, i * 10, 10) === data.y[i]) right++;
    return right / data.n;
  }

  /** Adam on softmax cross-entropy; batches from a seeded permutation per epoch. */
  train(data: LabelledImages, log: (line: string) => void): void {
    let optimizer = tf.train.adam(LR_BY_EPOCH[0]);
    const per = this.size * this.size;
    const xb = new Float32Array(BATCH * per);
    const yb = new Int32Array(BATCH);
    const varList = [...this.vars.values()];
    // Random shifts (+-1 px at 14x14, +-2 at 28x28) against memorising 8,000 digits: 96.8% -> 97.9% held out at 14x14.
    const maxShift = Math.max(1, Math.round(this.size / 14));
    for (let epoch = 0; epoch < LR_BY_EPOCH.length; epoch++) {
      if (epoch > 0 && LR_BY_EPOCH[epoch] !== LR_BY_EPOCH[epoch - 1]) {
        // A fresh Adam: tfjs has no public way to change the rate, and bias correction restarts its moments cleanly.
        optimizer.dispose();
        optimizer = tf.train.adam(LR_BY_EPOCH[epoch]);
      }
      const order = Rng.fromKey(SEED, 1, epoch).permutation(data.n);
      const shifts = Rng.fromKey(SEED, 2, epoch);
      let lossSum = 0;
      let batches = 0;
      for (let start = 0; start + BATCH <= data.n; start += BATCH) {
        for (let i = 0; i < BATCH; i++) {
          const k = order[start + i];
          const dx = shifts.nextInt(2 * maxShift + 1) - maxShift;
          const dy = shifts.nextInt(2 * maxShift + 1) - maxShift;
          shiftInto(data.x.subarray(k * per, (k + 1) * per), xb.subarray(i * per, (i + 1) * per), this.size, dx, dy);
          yb[i] = data.y[k];
        }
        const loss = tf.tidy(() => {
          const x = tf.tensor4d(xb, [BATCH, this.size, this.size, 1]);
          const labels = tf.oneHot(tf.tensor1d(yb, 'int32'), 10);
          return optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, this.forward(x).logits) as tf.Scalar, true, varList)!;
        });
        lossSum += loss.dataSync()[0];
        loss.dispose();
        batches++;
      }
      log(`classifier epoch ${epoch + 1}/${LR_BY_EPOCH.length}: mean loss ${(lossSum / batches).toFixed(4)}`);
    }
    optimizer.dispose();
  }

  toCache(backend: string, trainSeconds: number): CacheFile {
    const weights = [...this.vars.entries()].map(([name, t]) => {
      const data = t.dataSync() as Float32Array;
      return { name, shape: t.shape, base64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
    });
    return { version: CLASSIFIER_VERSION, size: this.size, backend, trainSeconds, weights };
  }

  static fromCache(file: CacheFile): DigitClassifier {
    const vars = new Map<string, tf.Variable>();
    for (const w of file.weights) {
      const bytes = Buffer.from(w.base64, 'base64');
      const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      vars.set(w.name, tf.variable(tf.tensor(values, w.shape), false));
    }
    return new DigitClassifier(file.size, vars);
  }
}

export interface ClassifierInfo {
  classifier: DigitClassifier;
  cacheFile: string;
  fromCache: boolean;
  /** Seconds spent training (in the run that trained it, when loaded from the cache). */
  trainSeconds: number;
  trainedOn: string;
}

/** The cached classifier for this image size, or a freshly trained one (then cached). */
export function loadOrTrainClassifier(size: number, train: LabelledImages, cacheDir: string, backend: string, log: (line: string) => void): ClassifierInfo {
  const cacheFile = path.join(cacheDir, `digit-classifier-${size}.json`);
  if (fs.existsSync(cacheFile)) {
    const file = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as CacheFile;
    if (file.version === CLASSIFIER_VERSION && file.size === size) {
      return { classifier: DigitClassifier.fromCache(file), cacheFile, fromCache: true, trainSeconds: file.trainSeconds, trainedOn: file.backend };
    }
    log(`${cacheFile}: version ${file.version} is stale, retraining`);
  }
  const t0 = process.hrtime.bigint();
  const classifier = DigitClassifier.init(size);
  classifier.train(train, log);
  const trainSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.mkdirSync(cacheDir, { recursive: true });
  // Written whole then renamed, so a killed run never leaves a half-written cache behind.
  fs.writeFileSync(`${cacheFile}.tmp`, JSON.stringify(classifier.toCache(backend, trainSeconds)));
  fs.renameSync(`${cacheFile}.tmp`, cacheFile);
  return { classifier, cacheFile, fromCache: false, trainSeconds, trainedOn: backend };
}

/** dst = src moved by (dx, dy) pixels; uncovered pixels get the background value -1. */
function shiftInto(src: Float32Array, dst: Float32Array, size: number, dx: number, dy: number): void {
  dst.fill(-1);
  for (let y = Math.max(0, dy); y < Math.min(size, size + dy); y++) {
    for (let x = Math.max(0, dx); x < Math.min(size, size + dx); x++) dst[y * size + x] = src[(y - dy) * size + (x - dx)];
  }
}

export function argmax(values: ArrayLike<number>, offset: number, length: number): number {
  let best = 0;
  for (let j = 1; j < length; j++) if (values[offset + j] > values[offset + best]) best = j;
  return best;
}
