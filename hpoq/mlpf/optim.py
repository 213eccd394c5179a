"""Optimisers (AdamW, LAMB) and learning-rate schedules on the global step and fixed horizon.

Every schedule is a function of (global step, total steps = R * steps per epoch), never of the
work unit's end epoch (docs/mlpf-data.md#model-and-training, "Training loop"), so training 0 -> r and then r -> R equals
training 0 -> R.
"""

from __future__ import annotations

import math

import torch

from hpoq.errors import ConfigError

SCHEDULES = ("cosine", "onecycle", "constant")
OPTIMIZERS = ("adamw", "lamb")


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning", Algorithm 2):
    Adam moments with decoupled weight decay and a per-tensor trust ratio ||w|| / ||update||."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                update = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update = update.add(p, alpha=group["weight_decay"])
                w_norm, u_norm = p.norm(), update.norm()
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_(update * trust, alpha=-group["lr"])
        return loss


def make_optimizer(name: str, params, lr: float, weight_decay: float):
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "lamb":
        return Lamb(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str, warmup_frac: float = 0.0) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    cosine: base -> 0.1 base; onecycle: torch's OneCycle shape (30 % up from base/25, cosine down
    to base/1e4); constant. A linear warmup over ``warmup_frac`` of the steps multiplies any of them.
    """
    total = max(1, int(total_steps))
    x = min(1.0, step / total)
    if schedule == "cosine":
        lr = base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * x)))
    elif schedule == "onecycle":
        up = 0.3
        lo, final = base_lr / 25.0, base_lr / 1e4
        if x < up:
            lr = lo + (base_lr - lo) * 0.5 * (1 - math.cos(math.pi * x / up))
        else:
            lr = final + (base_lr - final) * 0.5 * (1 + math.cos(math.pi * (x - up) / (1 - up)))
    elif schedule == "constant":
        lr = base_lr
    else:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    warm = int(round(warmup_frac * total))
    if warm > 0 and step < warm:
        lr *= (step + 1) / warm
    return lr
