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


def parse_cfg_schedule(schedule: str) -> tuple[str, int, int]:
    """``constant``, ``linear`` or ``interval:A-B`` -> (kind, A, B); A, B are token rows (inclusive),
    0, 0 for the other kinds. Raises ValueError naming the accepted forms."""
    if schedule in ("constant", "linear"):
        return schedule, 0, 0
    kind, _, rows = schedule.partition(":")
    first, _, last = rows.partition("-")
    if kind == "interval" and first.isdigit() and last.isdigit() and int(first) <= int(last):
        return kind, int(first), int(last)
    raise ValueError(f"unknown CFG schedule {schedule!r}; use constant, linear or interval:A-B (token rows A to B, "
                     "e.g. interval:1-6)")


def cfg_scale_at(n: int, num_rows: int, scale: float, schedule: str) -> float:
    """CFG weight for token row n: ``constant`` = w everywhere; ``linear`` ramps 1 → w over the rows
    (MUSE/MAR-style: little guidance on the first, noisiest maps); ``interval:A-B`` = w on rows A..B and
    none (1) elsewhere, the guidance interval of Kynkäänniemi et al. 2024 (guidance at the highest noise
    levels narrows the samples' layouts, at the lowest it only sharpens)."""
    kind, first, last = parse_cfg_schedule(schedule)
    if kind == "interval":
        return scale if first <= n <= last else 1.0
    if kind == "constant" or num_rows <= 1:
        return scale
    return 1.0 + (scale - 1.0) * n / (num_rows - 1)
