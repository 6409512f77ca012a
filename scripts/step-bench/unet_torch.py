#!/usr/bin/env python3
"""
The project's DDPM U-Net (src/model/unet.ts, parameters as src/model/paramSpecs.ts) in PyTorch,
for scripts/step-bench: one training step (q_sample, forward, per-example eps-MSE summed,
backward to every parameter) timed on the CPU.

Usage: unet_torch.py CONFIG_JSON BATCH [DEVICE]
  CONFIG_JSON: the UNetConfig as JSON (imageSize, imageChannels, channels, channelMult,
  resBlocks, attentionResolutions, dropout, normGroups). DEVICE: cpu (default) or cuda.
Protocol (line based, so the Node benchmark can interleave its own steps with these):
  prints  {"event": "ready", "params": N, "torch": VERSION, "parallel": ...}
  reads   "step THREADS"  -> runs one step with torch.set_num_threads(THREADS),
  prints  {"event": "step", "threads": T, "ms": MS, "cpuMs": CPU_MS}
  reads   "quit"          -> exits.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    scale = math.log(10000) / max(half - 1, 1)
    freqs = torch.exp(-scale * torch.arange(half, dtype=torch.float64, device=t.device))
    args = t.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1).to(torch.float32)


class Norm(nn.GroupNorm):
    def __init__(self, groups: int, ch: int):
        super().__init__(groups, ch, eps=1e-6)  # gamma [ch], beta [ch]


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)  # kernel [3,3,cin,cout] + bias [cout]


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb_ch: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = Norm(groups, cin)
        self.conv1 = conv3(cin, cout)
        self.temb_proj = nn.Linear(temb_ch, cout)
        self.norm2 = Norm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3(cout, cout)
        # nin_shortcut: dense [cin, cout] + bias, applied per pixel (a 1x1 conv).
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
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
    """Same modules, in the same order and with the same shapes, as paramSpecs.ts."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        ch, groups, drop = cfg['channels'], cfg['normGroups'], cfg['dropout']
        temb_ch = 4 * ch
        self.sizes = level_sizes(cfg)
        attn = set(cfg['attentionResolutions'])
        self.temb_dense0 = nn.Linear(ch, temb_ch)
        self.temb_dense1 = nn.Linear(temb_ch, temb_ch)
        self.conv_in = conv3(cfg['imageChannels'], ch)
        self.down = nn.ModuleList()
        skip_channels, cur = [ch], ch
        last = len(cfg['channelMult']) - 1
        for level, mult in enumerate(cfg['channelMult']):
            out = ch * mult
            blocks, attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg['resBlocks']):
                blocks.append(ResBlock(cur, out, temb_ch, groups, drop))
                cur = out
                if self.sizes[level] in attn:
                    attns.append(AttnBlock(cur, groups))
                skip_channels.append(cur)
            stage = nn.Module()
            stage.blocks, stage.attns = blocks, attns
            stage.downsample = conv3(cur, cur, 2) if level != last else None
            if level != last:
                skip_channels.append(cur)
            self.down.append(stage)
        self.mid_block_1 = ResBlock(cur, cur, temb_ch, groups, drop)
        self.mid_attn_1 = AttnBlock(cur, groups)
        self.mid_block_2 = ResBlock(cur, cur, temb_ch, groups, drop)
        self.up = nn.ModuleList()
        for level in range(last, -1, -1):
            out = ch * cfg['channelMult'][level]
            blocks, attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg['resBlocks'] + 1):
                skip = skip_channels.pop()
                blocks.append(ResBlock(cur + skip, out, temb_ch, groups, drop))
                cur = out
                if self.sizes[level] in attn:
                    attns.append(AttnBlock(cur, groups))
            stage = nn.Module()
            stage.blocks, stage.attns = blocks, attns
            stage.upsample = conv3(cur, cur) if level != 0 else None
            self.up.append(stage)
        self.norm_out = Norm(groups, cur)
        self.conv_out = conv3(cur, cfg['imageChannels'])

    def forward(self, x, t):
        cfg = self.cfg
        temb = self.temb_dense0(timestep_embedding(t, cfg['channels']))
        temb = self.temb_dense1(F.silu(temb))
        h = self.conv_in(x)
        skips = [h]
        for stage in self.down:
            for i, block in enumerate(stage.blocks):
                h = block(h, temb)
                if len(stage.attns):
                    h = stage.attns[i](h)
                skips.append(h)
            if stage.downsample is not None:
                # TF 'SAME' with stride 2: pad 0 before, (k - 1 - ...) after; same output size.
                h = stage.downsample(h)
                skips.append(h)
        h = self.mid_block_2(self.mid_attn_1(self.mid_block_1(h, temb)), temb)
        last = len(cfg['channelMult']) - 1
        for j, stage in enumerate(self.up):
            level = last - j
            for i, block in enumerate(stage.blocks):
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
                if len(stage.attns):
                    h = stage.attns[i](h)
            if stage.upsample is not None:
                size = self.sizes[level - 1]
                h = F.interpolate(h, scale_factor=2, mode='nearest')[:, :, :size, :size]
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def main():
    cfg = json.loads(sys.argv[1])
    batch = int(sys.argv[2])
    device = torch.device(sys.argv[3] if len(sys.argv) > 3 else 'cpu')
    # Strict fp32 on a GPU, as tfjs's webgpu computes: cuDNN's convolutions default to TF32 (10-bit
    # mantissa) on Ampere and later, which would time a less precise step.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    torch.set_num_interop_threads(1)
    model = UNet(cfg).to(device)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    size, chans = cfg['imageSize'], cfg['imageChannels']
    # Linear beta schedule, T = 1000, as the project's default.
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    x0 = (torch.rand(batch, chans, size, size) * 2 - 1).to(device)
    noise = torch.randn(batch, chans, size, size).to(device)
    t = torch.randint(0, 1000, (batch,))
    a = abar[t].to(torch.float32).sqrt()[:, None, None, None].to(device)
    s = (1 - abar[t]).to(torch.float32).sqrt()[:, None, None, None].to(device)
    t = t.to(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def step():
        for p in model.parameters():
            p.grad = None
        xt = a * x0 + s * noise
        eps = model(xt, t)
        loss = ((noise - eps) ** 2).mean(dim=(1, 2, 3)).sum()
        loss.backward()
        return loss

    print(json.dumps({'event': 'ready', 'params': params, 'torch': torch.__version__, 'parallel': torch.__config__.parallel_info().splitlines()[:4],
                      'tf32': torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == 'quit':
            break
        if cmd[0] == 'step':
            threads = int(cmd[1])
            torch.set_num_threads(threads)
            c0 = time.process_time()
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            ms = (time.perf_counter() - t0) * 1000
            cpu = (time.process_time() - c0) * 1000
            print(json.dumps({'event': 'step', 'threads': threads, 'ms': ms, 'cpuMs': cpu}), flush=True)


if __name__ == '__main__':
    main()
