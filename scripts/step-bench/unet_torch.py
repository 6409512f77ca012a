#!/usr/bin/env python3
"""
The project's DDPM U-Net in PyTorch (scripts/torch/ddpm_unet.py: the same function as
src/model/unet.ts, checked by test/torchExport.test.ts), for scripts/step-bench: one training step
(q_sample, forward, per-example eps-MSE summed, backward to every parameter) timed.

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
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'torch'))
from ddpm_unet import UNet  # noqa: E402


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
