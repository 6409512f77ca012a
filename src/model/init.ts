/** Deterministic parameter initialisation on the host, identical on every backend. */
import { ParamSpec, paramSize } from './paramSpecs';
import { Rng, RngStream } from '../rng/rng';

export interface InitOptions {
  /** Replace the reference's zero init with fan-avg init (gradient tests need every path live). */
  noZeroInit?: boolean;
}

/** DDPM's default_init: variance scaling, scale 1, fan_avg, uniform: U(-a, a), a = sqrt(3 / fan_avg). */
function fanAvgLimit(shape: number[]): number {
  const receptive = shape.length > 2 ? paramSize(shape.slice(0, -2)) : 1;
  const fanIn = shape[shape.length - 2] * receptive;
  const fanOut = shape[shape.length - 1] * receptive;
  return Math.sqrt(3 / ((fanIn + fanOut) / 2));
}

export function initParams(specs: ParamSpec[], seed: number, opts: InitOptions = {}): Float32Array[] {
  return specs.map((spec, index) => {
    const values = new Float32Array(paramSize(spec.shape));
    const init = spec.init === 'zero' && opts.noZeroInit && spec.shape.length > 1 ? 'fanAvg' : spec.init;
    switch (init) {
      case 'zero':
        break;
      case 'ones':
        values.fill(1);
        break;
      case 'fanAvg': {
        const rng = Rng.fromKey(seed >>> 0, RngStream.init, index);
        const a = fanAvgLimit(spec.shape);
        for (let i = 0; i < values.length; i++) values[i] = (2 * rng.nextFloat64() - 1) * a;
        break;
      }
      default: {
        const never: never = init;
        throw new Error(`unknown init ${String(never)}`);
      }
    }
    return values;
  });
}
