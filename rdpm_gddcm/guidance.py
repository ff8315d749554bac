"""Classifier-free guidance (Ho & Salimans 2022), written once for the backbone (x̂0, ε̂) and the
token generator (logits): ``out = out_u + w·(out_c - out_u)`` from one batched call on the
conditional and the null-class halves; ``w = 1`` is no guidance (DiT/diffusers convention)."""
from __future__ import annotations

import torch


def guided(fn, inputs: tuple, y: torch.Tensor, null_class: int, scale: float):
    """``fn(*inputs, labels)`` guided with weight ``scale``: one call on the inputs twice, with the
    labels ``y`` and then the null class. ``fn`` returns a tensor or a tuple of tensors (each mixed)."""
    null = torch.full_like(y, null_class)
    out = fn(*[torch.cat([a, a]) for a in inputs], torch.cat([y, null]))

    def mix(o):
        cond, uncond = o.chunk(2)
        return uncond + scale * (cond - uncond)
    return tuple(mix(o) for o in out) if isinstance(out, tuple) else mix(out)


def cfg_scale_at(n: int, num_rows: int, scale: float, schedule: str) -> float:
    """CFG weight for token row n: ``constant`` = w everywhere; ``linear`` ramps 1 → w over the rows
    (MUSE/MAR-style: little guidance on the first, noisiest maps)."""
    if schedule == "constant" or num_rows <= 1:
        return scale
    if schedule == "linear":
        return 1.0 + (scale - 1.0) * n / (num_rows - 1)
    raise ValueError(f"unknown CFG schedule {schedule!r}; use constant or linear")
