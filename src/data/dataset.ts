/**
 * Entry point of the data layer: a spec string picks the format and the location.
 * Each format lives in its own file; this one only parses the spec and dispatches.
 */
import { loadCifar10 } from './cifar10';
import { loadIdx } from './idx';
import { loadMnistPackage } from './mnistPackage';
import { loadNpz } from './npzDataset';
import { type DecodeOptions, loadImageDirectory } from './imageDir';
import { DataError, type ImageDataset } from './types';
import { type FitTarget, fitDataset } from './fit';

export { DataError, type ImageDataset, maxLabel } from './types';
export { fitDataset, type FitTarget } from './fit';
export type { DecodeOptions } from './imageDir';

/** The accepted spec forms, as shown in error messages and help text. */
export const DATASET_SPEC_FORMS = ['mnist', 'idx:PATH', 'cifar10:DIR', 'images:DIR', 'npz:FILE'] as const;

export type DatasetSpec =
  | { scheme: 'mnist' }
  | { scheme: 'idx'; path: string }
  | { scheme: 'cifar10'; dir: string }
  | { scheme: 'images'; dir: string }
  | { scheme: 'npz'; path: string };

/** Loads the whole dataset into memory as uint8 NHWC pixels, fitted to a model if given one
 * (images:DIR fits each image as it decodes it, on `decode.threads` threads). Fails with a
 * one-line DataError. */
export async function loadDataset(spec: string, fit?: FitTarget, decode: DecodeOptions = {}): Promise<ImageDataset> {
  const parsed = parseDatasetSpec(spec);
  if (parsed.scheme === 'images') return loadImageDirectory(parsed.dir, fit, decode);
  const raw = await loadAsIs(parsed);
  return fit === undefined ? raw : fitDataset(raw, fit.size, fit.channels, fit.mode);
}

async function loadAsIs(parsed: DatasetSpec): Promise<ImageDataset> {
  switch (parsed.scheme) {
    case 'mnist':
      return loadMnistPackage();
    case 'idx':
      return loadIdx(parsed.path);
    case 'cifar10':
      return loadCifar10(parsed.dir);
    case 'images':
      return loadImageDirectory(parsed.dir);
    case 'npz':
      return loadNpz(parsed.path);
    default: {
      const unhandled: never = parsed;
      throw new DataError(`unhandled dataset spec ${JSON.stringify(unhandled)}`);
    }
  }
}

/** What the log's data line says: source, size, classes (named where the data names them), fitting. */
export function describeDataset(ds: ImageDataset): string {
  const names = ds.classNames ? ` (${ds.classNames.map((n, i) => `${i} ${n}`).join(', ')})` : '';
  const size = `${ds.height}x${ds.width}x${ds.channels}`;
  return `${ds.source}: ${ds.count} images ${ds.fittedFrom ?? size}${ds.labels ? ` in ${ds.classes} classes${names}` : ''}` +
    (ds.fittedFrom === undefined ? '' : `, fitted to ${size}`);
}

/** Splits `scheme:location` at the first colon, so locations may contain colons. */
export function parseDatasetSpec(spec: string): DatasetSpec {
  const colon = spec.indexOf(':');
  const scheme = colon < 0 ? spec : spec.slice(0, colon);
  const location = colon < 0 ? '' : spec.slice(colon + 1);
  const allowed = `expected one of ${DATASET_SPEC_FORMS.join(', ')}`;
  const needLocation = (): string => {
    if (location === '') throw new DataError(`dataset spec "${spec}" has no path after "${scheme}:"; ${allowed}`);
    return location;
  };
  switch (scheme) {
    case 'mnist':
      if (colon >= 0) throw new DataError(`dataset spec "${spec}": "mnist" takes no path; ${allowed}`);
      return { scheme };
    case 'idx':
      return { scheme, path: needLocation() };
    case 'cifar10':
      return { scheme, dir: needLocation() };
    case 'images':
      return { scheme, dir: needLocation() };
    case 'npz':
      return { scheme, path: needLocation() };
    default:
      throw new DataError(`unknown dataset spec "${spec}": ${allowed}`);
  }
}
