#!/usr/bin/env python3
"""
ddpm-cluster's U-Net in PyTorch, numerically the same function as src/model/unet.ts, and a loader
for the files `ddpm export` writes (safetensors under this module's state_dict names).

    import sys; sys.path.insert(0, 'scripts/torch')
    from ddpm_unet import load_exported
    model, meta = load_exported('model.safetensors')   # eval mode, strict state_dict
    eps = model(x_t, t)                                  # x_t: [N, C, H, W] float32, t: [N] int64
    eps = model(x_t, t, labels)                          # class-conditional: labels [N], meta['classes'] = "no class"
    save_exported(model, meta, 'tuned.safetensors')      # after training in PyTorch: ddpm train --init-from takes it

What the network predicts is meta['prediction'] (eps, v or x0); meta['schedule'] and
meta['timesteps'] give the noise schedule (make_schedule below). The command line samples from an
exported model with DDIM (eta 0) and writes a PNG grid, as `ddpm sample` does:

    python3 scripts/torch/ddpm_unet.py sample model.safetensors --n 64 --steps 50 --out grid.png
    python3 scripts/torch/ddpm_unet.py forward model.safetensors INPUT.json   # outputs as JSON

Needs only PyTorch (Debian's python3-torch; torch >= 1.13) and the standard library.
"""
import argparse
import json
import math
import os
import struct
import sys
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[sin(t f_i), cos(t f_i)], f_i = exp(-ln(10000) i / (half - 1)), in float64 then float32 (timeEmbedding.ts)."""
    half = dim // 2
    scale = math.log(10000) / max(half - 1, 1)
    freqs = torch.exp(-scale * torch.arange(half, dtype=torch.float64, device=t.device))
    args = t.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1).to(torch.float32)


class Norm(nn.GroupNorm):
    def __init__(self, groups: int, ch: int):
        super().__init__(groups, ch, eps=1e-6)


def conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class Downsample(nn.Conv2d):
    """A 3x3 convolution of stride 2 with TensorFlow's 'same' padding (the reference's and tfjs's):
    the pad that the output size ceil(n / 2) needs, the odd pixel after rather than before. PyTorch's
    padding=1 would put one before on even sizes and shift every output by a pixel."""

    def __init__(self, ch: int):
        super().__init__(ch, ch, 3, stride=2)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        ph = max((math.ceil(h / 2) - 1) * 2 + 3 - h, 0)
        pw = max((math.ceil(w / 2) - 1) * 2 + 3 - w, 0)
        return super().forward(F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb_ch: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = Norm(groups, cin)
        self.conv1 = conv3(cin, cout)
        self.temb_proj = nn.Linear(temb_ch, cout)
        self.norm2 = Norm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3(cout, cout)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels: softmax(q k^T / sqrt(C)) v, projected, added."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = Norm(groups, ch)
        self.q = nn.Conv2d(ch, ch, 1)
        self.k = nn.Conv2d(ch, ch, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(n, c, h * w).permute(0, 2, 1)
        k = self.k(y).reshape(n, c, h * w)
        v = self.v(y).reshape(n, c, h * w).permute(0, 2, 1)
        weights = torch.softmax(torch.bmm(q, k) * (1 / math.sqrt(c)), dim=-1)
        attended = torch.bmm(weights, v).permute(0, 2, 1).reshape(n, c, h, w)
        return x + self.proj_out(attended)


def level_sizes(cfg) -> list:
    sizes, s = [], cfg['imageSize']
    for _ in cfg['channelMult']:
        sizes.append(s)
        s = (s + 1) // 2
    return sizes


class UNet(nn.Module):
    """The modules of src/model/paramSpecs.ts; `cfg` is its UNetConfig (the export's unet_config)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        ch, groups, drop = cfg['channels'], cfg['normGroups'], cfg['dropout']
        temb_ch = 4 * ch
        self.classes = cfg.get('classes', 0) or 0
        self.sizes = level_sizes(cfg)
        attn = set(cfg['attentionResolutions'])
        last = len(cfg['channelMult']) - 1
        self.temb_dense0 = nn.Linear(ch, temb_ch)
        self.temb_dense1 = nn.Linear(temb_ch, temb_ch)
        # Row `classes` is "no class" (classifier-free guidance's unconditional half).
        self.class_emb = nn.Embedding(self.classes + 1, temb_ch) if self.classes > 0 else None
        self.conv_in = conv3(cfg['imageChannels'], ch)
        self.down = nn.ModuleList()
        skip_channels, cur = [ch], ch
        for level, mult in enumerate(cfg['channelMult']):
            out = ch * mult
            stage = nn.Module()
            stage.blocks, stage.attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg['resBlocks']):
                stage.blocks.append(ResBlock(cur, out, temb_ch, groups, drop))
                cur = out
                if self.sizes[level] in attn:
                    stage.attns.append(AttnBlock(cur, groups))
                skip_channels.append(cur)
            stage.downsample = Downsample(cur) if level != last else None
            if level != last:
                skip_channels.append(cur)
            self.down.append(stage)
        self.mid_block_1 = ResBlock(cur, cur, temb_ch, groups, drop)
        self.mid_attn_1 = AttnBlock(cur, groups)
        self.mid_block_2 = ResBlock(cur, cur, temb_ch, groups, drop)
        up = {}
        for level in range(last, -1, -1):
            out = ch * cfg['channelMult'][level]
            stage = nn.Module()
            stage.blocks, stage.attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg['resBlocks'] + 1):
                stage.blocks.append(ResBlock(cur + skip_channels.pop(), out, temb_ch, groups, drop))
                cur = out
                if self.sizes[level] in attn:
                    stage.attns.append(AttnBlock(cur, groups))
            stage.upsample = conv3(cur, cur) if level != 0 else None
            up[level] = stage
        # Indexed by level (up.0 is the full-resolution stage), as the parameter names are.
        self.up = nn.ModuleList([up[level] for level in range(last + 1)])
        self.norm_out = Norm(groups, cur)
        self.conv_out = conv3(cur, cfg['imageChannels'])

    def forward(self, x, t, labels=None):
        temb = self.temb_dense0(timestep_embedding(t, self.cfg['channels']))
        temb = self.temb_dense1(F.silu(temb))
        if self.class_emb is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.classes, dtype=torch.long, device=x.device)
            temb = temb + self.class_emb(labels)
        h = self.conv_in(x)
        skips = [h]
        for stage in self.down:
            for i, block in enumerate(stage.blocks):
                h = block(h, temb)
                if len(stage.attns):
                    h = stage.attns[i](h)
                skips.append(h)
            if stage.downsample is not None:
                h = stage.downsample(h)
                skips.append(h)
        h = self.mid_block_2(self.mid_attn_1(self.mid_block_1(h, temb)), temb)
        for level in range(len(self.up) - 1, -1, -1):
            stage = self.up[level]
            for i, block in enumerate(stage.blocks):
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
                if len(stage.attns):
                    h = stage.attns[i](h)
            if stage.upsample is not None:
                size = self.sizes[level - 1]
                h = F.interpolate(h, scale_factor=2, mode='nearest')[:, :, :size, :size]
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def read_safetensors(path: str):
    """float32 tensors and the metadata of a safetensors file, with the standard library and torch."""
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop('__metadata__', {})
    tensors = {}
    for name, entry in header.items():
        if entry['dtype'] != 'F32':
            raise ValueError(f'{path}: tensor {name} is {entry["dtype"]}, only F32 is read')
        begin, end = entry['data_offsets']
        raw = bytearray(data[8 + n + begin:8 + n + end])
        t = torch.frombuffer(raw, dtype=torch.float32) if raw else torch.zeros(0)
        if sys.byteorder != 'little':
            t = t.byteswap()
        tensors[name] = t.reshape(entry['shape'])
    return tensors, metadata


def load_exported(path: str, device: str = 'cpu'):
    """(model in eval mode on `device`, metadata) from a `ddpm export` file."""
    tensors, metadata = read_safetensors(path)
    if metadata.get('format') != 'ddpm-cluster-unet':
        raise ValueError(f'{path}: not a ddpm export (format {metadata.get("format")!r})')
    cfg = json.loads(metadata['unet_config'])
    model = UNet(cfg)
    model.load_state_dict(tensors, strict=True)
    meta = {
        'config': cfg, 'classes': cfg.get('classes', 0) or 0, 'prediction': metadata['prediction'],
        'schedule': metadata['schedule'], 'timesteps': int(metadata['timesteps']), 'step': int(metadata['step']),
        'weights': metadata['weights'], 'class_names': json.loads(metadata.get('class_names', '[]')),
    }
    return model.to(device).eval(), meta


def save_exported(model: UNet, meta, path: str, step: int = 0, weights: str = 'raw') -> None:
    """Writes `model` as `ddpm export` does (meta as load_exported returns it: config, prediction,
    schedule, timesteps, optionally class_names), so that `ddpm train --init-from PATH` fine-tunes
    from weights trained or changed in PyTorch."""
    state = {name: t.detach().to('cpu', torch.float32).contiguous() for name, t in model.state_dict().items()}
    metadata = {
        'format': 'ddpm-cluster-unet', 'unet_config': json.dumps(meta['config'], separators=(',', ':')),
        'prediction': meta['prediction'], 'schedule': meta['schedule'], 'timesteps': str(meta['timesteps']),
        'step': str(step), 'weights': weights, 'parameters': str(sum(t.numel() for t in state.values())),
    }
    if meta.get('class_names'):
        metadata['class_names'] = json.dumps(meta['class_names'])
    header, offset, blobs = {'__metadata__': metadata}, 0, []
    for name, t in state.items():
        blob = t.numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    raw = json.dumps(header, separators=(',', ':')).encode()
    raw += b' ' * (-len(raw) % 8)
    tmp = f'{path}.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)) + raw + b''.join(blobs))
    os.replace(tmp, path)


def make_schedule(name: str, timesteps: int) -> torch.Tensor:
    """abar_t in float64 (src/schedule/betaSchedule.ts): DDPM's linear betas rescaled to 1000/T, or
    Improved DDPM's cosine with betas clipped at 0.999."""
    if name == 'linear':
        scale = 1000 / timesteps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    elif name == 'cosine':
        f = lambda t: math.cos(((t / timesteps) + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(timesteps)], dtype=torch.float64)
    else:
        raise ValueError(f'unknown schedule {name}')
    return torch.cumprod(1 - betas, 0)


@torch.no_grad()
def ddim_sample(model, meta, n: int, steps: int = 50, seed: int = 0, labels=None, guidance: float = 2.0, device: str = 'cpu'):
    """DDIM, eta 0 (Song et al. 2021, Eq. 12), over the timesteps (steps-1) s, ..., s, 0 with
    s = T // steps, x0 clipped to [-1, 1]; classifier-free guidance uncond + g (cond - uncond) when
    labels are given. Returns [n, C, H, W] in [-1, 1]. (Not bit-identical to `ddpm sample`: the
    initial noise comes from torch's generator.)"""
    cfg = meta['config']
    abar = make_schedule(meta['schedule'], meta['timesteps'])
    stride = meta['timesteps'] // steps
    seq = [i * stride for i in range(steps - 1, -1, -1)]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cfg['imageChannels'], cfg['imageSize'], cfg['imageSize'], generator=gen).to(device)
    for i, t in enumerate(seq):
        a, a_prev = float(abar[t]), float(abar[seq[i + 1]]) if i + 1 < len(seq) else 1.0
        tt = torch.full((n,), t, dtype=torch.long, device=device)
        if labels is not None and meta['classes'] > 0:
            none = torch.full_like(labels, meta['classes'])
            out = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, none]))
            cond, uncond = out[:n], out[n:]
            out = uncond + guidance * (cond - uncond)
        else:
            out = model(x, tt)
        if meta['prediction'] == 'eps':
            x0 = (x - math.sqrt(1 - a) * out) / math.sqrt(a)
        elif meta['prediction'] == 'v':
            x0 = math.sqrt(a) * x - math.sqrt(1 - a) * out
        else:
            x0 = out
        x0 = x0.clamp(-1, 1)
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    return x.clamp(-1, 1)


def write_png(path: str, images: torch.Tensor, cols: int) -> None:
    """A grid of [n, C, H, W] images in [-1, 1] (C = 1 grey or 3 RGB), 2 px of padding, as a PNG."""
    n, c, h, w = images.shape
    rows = math.ceil(n / cols)
    height, width = rows * (h + 2) + 2, cols * (w + 2) + 2
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    canvas = torch.zeros(height, width, c, dtype=torch.uint8)
    for k in range(n):
        y, x = 2 + (k // cols) * (h + 2), 2 + (k % cols) * (w + 2)
        canvas[y:y + h, x:x + w] = pixels[k]
    raw = b''.join(b'\x00' + bytes(canvas[r].flatten().tolist()) for r in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0 if c == 1 else 2, 0, 0, 0)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b''))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    s = sub.add_parser('sample', help='DDIM samples from an exported model as a PNG grid')
    s.add_argument('model')
    s.add_argument('--n', type=int, default=64)
    s.add_argument('--steps', type=int, default=50)
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--class', dest='cls', type=int, default=None, help='a class-conditional model: this class for every image (default: one column per class)')
    s.add_argument('--guidance', type=float, default=2.0)
    s.add_argument('--out', default='torch-samples.png')
    f = sub.add_parser('forward', help='the model\'s outputs for inputs given as JSON {x: NCHW nested lists, t: [...], labels?: [...]}')
    f.add_argument('model')
    f.add_argument('inputs')
    a = parser.parse_args()
    model, meta = load_exported(a.model)
    if a.command == 'forward':
        with open(a.inputs) as fh:
            inp = json.load(fh)
        labels = torch.tensor(inp['labels'], dtype=torch.long) if 'labels' in inp else None
        with torch.no_grad():
            out = model(torch.tensor(inp['x'], dtype=torch.float32), torch.tensor(inp['t'], dtype=torch.long), labels)
        state = [[name, list(t.shape)] for name, t in model.state_dict().items()]
        print(json.dumps({'torch': torch.__version__, 'state_dict': state, 'shape': list(out.shape), 'values': out.flatten().tolist()}))
        return
    classes = meta['classes']
    cols = classes if classes > 0 and a.cls is None else math.ceil(math.sqrt(a.n))
    labels = None
    if classes > 0:
        labels = torch.full((a.n,), a.cls, dtype=torch.long) if a.cls is not None else torch.arange(a.n) % classes
    images = ddim_sample(model, meta, a.n, a.steps, a.seed, labels, a.guidance)
    write_png(a.out, images, cols)
    print(f'wrote {a.out}: {a.n} samples, DDIM {a.steps} steps, from {a.model} (step {meta["step"]}, {meta["weights"]} weights)', file=sys.stderr)


if __name__ == '__main__':
    main()
