"""Reference values for test/optimizer.test.ts: PyTorch's AdamW under a warm-up + cosine LambdaLR.

Run with Debian's python3-torch (1.13): /usr/bin/python3 test/reference/adamw_torch.py
Prints the parameters after each of the steps as float32 values (JSON). The lambda is
optimizer.ts's warm-up ((step + 1) / warmup) then half cosine to 0 at `steps`; no clipping
(every gradient norm is below the clip), no EMA (torch has none built in).
"""
import json
import math

import torch

lr, warmup, steps, weight_decay = 0.01, 2, 6, 0.1
p0 = [0.5, -0.25, 2.0, -1.5]
grads = [[0.3, -0.4, 0.0, 0.1], [0.02, 0.5, -0.3, 0.1], [0.1, 0.2, -0.2, 0.0],
         [-0.3, 0.1, 0.05, 0.2], [0.2, -0.1, 0.1, -0.4], [0.05, 0.05, -0.05, 0.3]]


def factor(step):
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


p = torch.tensor(p0, dtype=torch.float32, requires_grad=True)
opt = torch.optim.AdamW([p], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
out = []
for g in grads:
    p.grad = torch.tensor(g, dtype=torch.float32)
    opt.step()
    sched.step()
    out.append([float(v) for v in p.detach()])
print(json.dumps(out))
