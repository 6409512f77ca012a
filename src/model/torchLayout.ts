/**
 * The U-Net's parameters under PyTorch's names and layouts, as scripts/torch/ddpm_unet.py declares
 * its modules (a state_dict that `load_state_dict(strict=True)` takes). Pure: no tfjs.
 *
 *   down_0/block_1/conv1/kernel [kh, kw, cin, cout]  ->  down.0.blocks.1.conv1.weight [cout, cin, kh, kw]
 *   temb/dense0/kernel [cin, cout]                   ->  temb_dense0.weight [cout, cin]        (nn.Linear)
 *   mid/attn_1/q/kernel [c, c]                       ->  mid_attn_1.q.weight [c, c, 1, 1]      (1x1 nn.Conv2d)
 *   up_2/block_0/norm1/gamma, beta                   ->  up.2.blocks.0.norm1.weight, bias      (nn.GroupNorm)
 *   class_emb/embedding [classes + 1, 4ch]           ->  class_emb.weight, unchanged           (nn.Embedding)
 */
import { ParamSpec, paramSize } from './paramSpecs';

export interface TorchTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Dense kernels that the reference applies per pixel ("nin"): 1x1 convolutions in PyTorch. */
const PER_PIXEL = new Set(['nin_shortcut', 'q', 'k', 'v', 'proj_out']);
const LEAF: Record<string, string> = { kernel: 'weight', bias: 'bias', gamma: 'weight', beta: 'bias', embedding: 'weight' };

export function torchName(name: string): string {
  const parts = name.split('/');
  const leaf = LEAF[parts.pop() as string];
  if (leaf === undefined) throw new RangeError(`no PyTorch name for parameter ${name}`);
  const modules: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    const indexed = /^(down|up|block|attn)_(\d+)$/.exec(p);
    if ((p === 'temb' || p === 'mid') && i + 1 < parts.length) {
      modules.push(`${p}_${parts[++i]}`); // temb_dense0, mid_block_1, mid_attn_1
    } else if (indexed) {
      const list = { down: 'down', up: 'up', block: 'blocks', attn: 'attns' }[indexed[1] as 'down' | 'up' | 'block' | 'attn'];
      modules.push(list, indexed[2]);
    } else {
      modules.push(p);
    }
  }
  return [...modules, leaf].join('.');
}

/** Axis order taking this project's layout to PyTorch's, and PyTorch's shape. */
function torchAxes(spec: ParamSpec): { perm: number[]; shape: number[] } {
  const { name, shape } = spec;
  const parts = name.split('/');
  if (parts[parts.length - 1] !== 'kernel') return { perm: shape.map((_, i) => i), shape: [...shape] };
  if (shape.length === 4) return { perm: [3, 2, 0, 1], shape: [shape[3], shape[2], shape[0], shape[1]] };
  const [cin, cout] = shape;
  return { perm: [1, 0], shape: PER_PIXEL.has(parts[parts.length - 2]) ? [cout, cin, 1, 1] : [cout, cin] };
}

/** out[j] = values[i] where the row-major index i over `shape` is permuted by `perm` into j. */
function permute(values: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const rank = shape.length;
  const outShape = perm.map((a) => shape[a]);
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let a = rank - 1; a >= 0; a--) {
    inStrides[a] = s;
    s *= shape[a];
  }
  // Walk the output in order; each output axis d steps the input by inStrides[perm[d]].
  const steps = perm.map((a) => inStrides[a]);
  const out = new Float32Array(values.length);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let j = 0; j < out.length; j++) {
    out[j] = values[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += steps[d];
      if (idx[d] < outShape[d]) break;
      src -= steps[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return out;
}

export function torchShape(spec: ParamSpec): number[] {
  return torchAxes(spec).shape;
}

export function toTorch(spec: ParamSpec, values: Float32Array): TorchTensor {
  if (values.length !== paramSize(spec.shape)) throw new RangeError(`${spec.name}: ${values.length} values for shape [${spec.shape}]`);
  const { perm, shape } = torchAxes(spec);
  return { name: torchName(spec.name), shape, data: permute(values, spec.shape, perm) };
}

/** The inverse of toTorch: a PyTorch tensor of `spec`'s parameter back in this project's layout. */
export function fromTorch(spec: ParamSpec, data: Float32Array): Float32Array {
  const { perm, shape } = torchAxes(spec);
  if (data.length !== paramSize(shape)) throw new RangeError(`${torchName(spec.name)}: ${data.length} values for shape [${shape}]`);
  // The inverse permutation, applied to the tensor in PyTorch's axis order (as 2-D or 4-D).
  const inverse = new Array<number>(perm.length);
  perm.forEach((a, d) => { inverse[a] = d; });
  return permute(data, perm.map((a) => spec.shape[a]), inverse);
}
