"""How coherent are one image's chosen codebook vectors, within a token map and across maps?

The diagnostics (README, "The middle maps from one real image") say the generator loses most of its FID in
token maps 4-6, and that one real image's tokens there help where independent picks do not. This measures
that coherence directly, without FID. For a token set (N images x R rows x G blocks) and each row r, with
u the unit-length codebook vector an image chose for a block (the chain's C_r[z]_g, SPEC §2):

- ``neighbour``: the mean cosine between the vectors of horizontally and vertically adjacent blocks of one
  image's map, minus the same with the neighbour taken from another image of the same class (a fixed
  within-class pairing): what one block's choice says about the next one's beyond what the class and the
  position say;
- ``next_map``: the same for one block's vectors at rows r and r + 1 (the same block, the next map).

Sets: the stored tokens of real images (``--tokens``, e.g. `val`'s), the generator's samples at its
``rdpm-sample`` setting (CFG, temperature, minimum-norm maps: the checkpoint's), and uniformly random tokens
(zero up to noise: the scale of "nothing"). Minimum-norm maps are left out (one fixed entry per block).

Teacher-forced sets (``given_real``, ``given_real_argmax``): the chain replays each real image's stored tokens,
and at every row the generator draws (at its setting) or takes its most likely token given *that image's*
state, as it does when trained. Its blocks are still drawn independently, so any agreement between them comes
through the state. Beside the coherence, ``with_real`` is the mean cosine between such a pick and the token the
encoder chose there (``real``'s own: 1). ``after_real_init``: the generator's own chain (its draws at its
setting) except the init map, which is the real image's: how much of the agreement survives once the generator
builds the states itself from a real start. ``with_init_prior`` (when the checkpoint has an init prior,
init_prior.py): the generator's own chain with its init map drawn from that prior; the ``generator`` set always
draws its own init map.

    python benchmarks/bench_token_coherence.py --generator assets/cifar10-generator \\
        --tokens runs/tokens-cifar10-val-edm-3m-8x8 --backbone assets/cifar10-taef2-edm-3m \\
        --num-images 500 --out benchmarks/results/token_coherence.json
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm.files import write_json_atomic  # noqa: E402
from rdpm_gddcm.sample import Sampler, resolve_recorded_path  # noqa: E402
from rdpm_gddcm.token_io import TokenDataset  # noqa: E402


def chosen_vectors(spec, tokens: torch.Tensor) -> torch.Tensor:
    """tokens (N, R, G) -> unit-length chosen codebook vectors (N, R, G, Db) of each row's codebook."""
    out = []
    for r in range(tokens.shape[1]):
        cb = spec.codebook_blocks(r, "cpu").float()                           # (K, G, Db)
        v = cb[tokens[:, r], torch.arange(tokens.shape[2])]                     # (N, G, Db)
        out.append(v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return torch.stack(out, 1)


def within_class_partner(labels: np.ndarray) -> np.ndarray:
    """For each image, another image of its class (the next one of that class, cyclically)."""
    partner = np.arange(len(labels))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        partner[idx] = np.roll(idx, -1) if len(idx) > 1 else idx
    return partner


def coherence(u: torch.Tensor, labels: np.ndarray, gh: int, gw: int) -> dict:
    """Per row: excess neighbour and next-map cosine (module docstring) of unit vectors u (N, R, G, Db)."""
    N, R, G, _ = u.shape
    p = torch.as_tensor(within_class_partner(labels))
    grid = u.reshape(N, R, gh, gw, -1)
    pairs = [(grid[:, :, :, :-1], grid[:, :, :, 1:]), (grid[:, :, :-1, :], grid[:, :, 1:, :])]
    neighbour = []
    for r in range(R):
        same = torch.cat([(a[:, r] * b[:, r]).sum(-1).flatten(1) for a, b in pairs], 1).mean()
        other = torch.cat([(a[:, r] * b[p, r]).sum(-1).flatten(1) for a, b in pairs], 1).mean()
        neighbour.append(float(same - other))
    next_map = [float((u[:, r] * u[:, r + 1]).sum(-1).mean() - (u[:, r] * u[p, r + 1]).sum(-1).mean())
                for r in range(R - 1)]
    return {"neighbour": neighbour, "next_map": next_map}


def agreement(u: torch.Tensor, v: torch.Tensor) -> list:
    """Per row: mean cosine between the unit vectors u and v (N, R, G, Db) of the same image and block."""
    return [float((u[:, r] * v[:, r]).sum(-1).mean()) for r in range(u.shape[1])]


class TeacherForced:
    """A chooser that replays stored ``tokens`` (B, R, G), so the chain is the real image's, and records what
    the generator's ``model_chooser`` would draw at each row given that state, and its argmax."""

    def __init__(self, model_chooser, tokens: torch.Tensor):
        self.model_chooser, self.tokens = model_chooser, tokens.long()
        self.drawn, self.argmax = [], []

    def _choose(self, ctx):
        logits = self.model_chooser.logits(ctx)              # CFG-combined, at the row's guidance scale
        self.drawn.append(self.model_chooser.draw(logits).cpu())
        self.argmax.append(logits.argmax(-1).cpu())
        return self.tokens[:, ctx.spec.row_of_step(ctx.n)].to(ctx.state.device)

    init = step = _choose


class RealInit:
    """A chooser that takes the init map (row 0) from stored ``tokens`` and lets ``model_chooser`` draw the rest."""

    def __init__(self, model_chooser, tokens: torch.Tensor):
        self.model_chooser, self.tokens = model_chooser, tokens.long()

    def init(self, ctx):
        return self.tokens[:, ctx.spec.row_of_step(ctx.n)].to(ctx.state.device)

    def step(self, ctx):
        return self.model_chooser.step(ctx)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--generator", default=str(ROOT / "assets" / "cifar10-generator"))
    p.add_argument("--tokens", required=True, help="stored tokens of real images (same tokenizer as the generator's)")
    p.add_argument("--backbone", default=None, help="the chain's backbone; default: the generator's recorded one")
    p.add_argument("--num-images", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--global-seed", type=int, default=0)
    p.add_argument("--mixed-precision", default="no")
    p.add_argument("--init-prior-guidance", type=float, default=None,
                   help="the with_init_prior set's guidance w; default: the checkpoint's recorded setting")
    p.add_argument("--init-prior-scale", type=float, default=None,
                   help="the with_init_prior set's scale s; default: the checkpoint's recorded setting")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "token_coherence.json"))
    a = p.parse_args()

    try:
        real = TokenDataset(a.tokens)
        sampler = Sampler(a.generator, backbone=a.backbone, mixed_precision=a.mixed_precision)
    except (OSError, ValueError) as e:                    # missing/corrupt tokens or checkpoint: one line, exit 2
        p.error(str(e))
    spec = sampler.tokenizer.spec
    if real.header.to_json() != sampler.header.to_json():
        p.error(f"--tokens {a.tokens} were not made by {a.generator}'s tokenizer (their token headers differ): "
                "pass tokens of the same plan, codebook and backbone")
    n = min(a.num_images, len(real))
    if n < 2 * sampler.num_classes:
        p.error(f"--num-images {a.num_images}: the measure pairs each image with another of its class, so it needs "
                f"at least {2 * sampler.num_classes} (two per class)")
    sets = {"real": (torch.as_tensor(real.tokens[:n]), real.labels[:n])}

    labels = np.arange(n) % sampler.num_classes                           # class-balanced
    prior_setting = {"init_prior_guidance": a.init_prior_guidance if a.init_prior_guidance is not None
                     else sampler.defaults["init_prior_guidance"],
                     "init_prior_scale": a.init_prior_scale if a.init_prior_scale is not None
                     else sampler.defaults["init_prior_scale"]}
    kinds = {"generator": "off", **({"with_init_prior": "gaussian"} if sampler.init_prior is not None else {})}
    for name, kind in kinds.items():
        toks = []
        for s in range(0, n, a.batch_size):
            idx = list(range(s, min(n, s + a.batch_size)))
            _, t, _ = sampler.sample(idx, labels[idx], global_seed=a.global_seed, return_tokens=True, init_prior=kind,
                                     **prior_setting)
            toks.append(t.cpu())
            print(f"{name}: {s + len(idx)}/{n}", flush=True)
        sets[name] = (torch.cat(toks), labels)
    drawn, best, after_init = [], [], []
    for s in range(0, n, a.batch_size):                  # the real images' chains or init maps, their classes
        idx = list(range(s, min(n, s + a.batch_size)))
        holder = {}
        stored = sets["real"][0][idx]
        sampler.sample(idx, sets["real"][1][idx], global_seed=a.global_seed, init_prior="off",
                       wrap_chooser=lambda mc: holder.setdefault("tf", TeacherForced(mc, stored)))
        drawn.append(torch.stack(holder["tf"].drawn, 1))
        best.append(torch.stack(holder["tf"].argmax, 1))
        _, t, _ = sampler.sample(idx, sets["real"][1][idx], global_seed=a.global_seed, return_tokens=True,
                                 init_prior="off", wrap_chooser=lambda mc: RealInit(mc, stored))
        after_init.append(t.cpu())
        print(f"teacher-forced and from a real init map {s + len(idx)}/{n}", flush=True)
    sets["given_real"] = (torch.cat(drawn), sets["real"][1])
    sets["given_real_argmax"] = (torch.cat(best), sets["real"][1])
    sets["after_real_init"] = (torch.cat(after_init), sets["real"][1])
    g = torch.Generator().manual_seed(a.global_seed)
    sets["random"] = (torch.randint(spec.codebook_size, tuple(sets["real"][0].shape), generator=g), labels)

    M = sampler.defaults["min_norm_maps"]
    R = sets["real"][0].shape[1]
    result = {"rows_sampled": R - M, "num_images": n, "sets": {}}
    real_u = chosen_vectors(spec, sets["real"][0].long())
    for name, (t, lab) in sets.items():
        u = chosen_vectors(spec, t.long())
        c = coherence(u, np.asarray(lab), spec.grid.gh, spec.grid.gw)
        if name.startswith("given_real"):
            c["with_real"] = agreement(u, real_u)
        result["sets"][name] = {k: v[:R - M] for k, v in c.items()}
        print(name, {k: [round(x, 4) for x in v[:R - M]] for k, v in c.items()}, flush=True)
    from bench_generator import relative_to_root          # benchmarks/ (this script's directory): paths as recorded there
    backbone = a.backbone or resolve_recorded_path(sampler.meta.get("backbone"), a.generator)
    result.update(generator=relative_to_root(a.generator), backbone=relative_to_root(str(backbone)), tokens=a.tokens,
                  sampling={k: sampler.defaults[k] for k in ("cfg_scale", "temperature", "min_norm_maps")},
                  init_prior=prior_setting if "with_init_prior" in sets else None,
                  command="python benchmarks/bench_token_coherence.py " + shlex.join(sys.argv[1:]))
    write_json_atomic(Path(a.out), result)


if __name__ == "__main__":
    main()
