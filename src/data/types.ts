/**
 * Shared types of the data loaders. Kept apart from dataset.ts so the per-format
 * loaders can import them without a circular import through the dispatcher.
 */

/** A whole dataset in memory as uint8 pixels, with class labels where the format has them. */
export interface ImageDataset {
  count: number;
  height: number;
  width: number;
  channels: number;
  /** NHWC, row-major: pixel (n, y, x, c) is at ((n * height + y) * width + x) * channels + c. */
  pixels: Uint8Array;
  /** The spec it was loaded from, e.g. `idx:/data/train-images-idx3-ubyte.gz`. */
  source: string;
  /** Class of each image, in [0, classes), for class-conditional training; absent when the data has none. */
  labels?: Uint8Array;
  classes?: number;
  /** What each class is called, where the data names them (images:DIR's subdirectories). */
  classNames?: string[];
  /** Set once fitted to a model (fit.ts): the size(s) the images had, for the log. */
  fittedFrom?: string;
}

/** The largest label (0 for none): a label file's class count is one more. */
export function maxLabel(labels: Uint8Array): number {
  return labels.reduce((max, l) => Math.max(max, l), 0);
}

/** Bad or unreadable input data. The message is one line: `<spec or file>: <what is wrong>`. */
export class DataError extends Error {
  override name = 'DataError';

  constructor(message: string) {
    // One line, so it reads well in logs and CLI output even if a path holds a newline.
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
  }
}
