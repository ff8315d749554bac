"""A joint prior for the generator's init map (ours; README, "A joint init map").

With ``init=codebook`` the chain's first token map is the encoder's choice for the clean latent x,
argmax_k ⟨C[k]_b, x_b⟩ per block (SPEC §5, gDDCM Eq. 15): each block records which way the image's latent
points there. The generator predicts that map from the class alone, every block independently (SPEC §9),
so its init maps carry no agreement between blocks, and the chain it builds from them has none in any later
map either, while started from a real image's init map it keeps much of a real image's (README, "Within a
map"). This prior draws the whole map at once: a latent x' from a class-conditional Gaussian fitted to
training latents, then the encoder's own init rule on x' (``init_tokens``).

    x' = μ + w·(μ_y − μ) + s·(F_yᵀ z + σ_y·ε),   z ~ N(0, I_r), ε ~ N(0, I_D)

per class y: μ_y the mean latent, F_y its r principal directions scaled by their standard deviations, σ_y
the remaining variance spread evenly over the D latent dimensions; μ the mean of the μ_y. ``guidance`` w = 1
is the fitted class mean, w > 1 moves away from the average of the classes, as classifier-free guidance
does for the logits; ``scale`` s = 1 is the fitted covariance. Image i's z and ε come from its own
generator, so its init map depends only on (seed, i), not on the batch it is drawn in.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

PRIOR_FILE = "init_prior.safetensors"
PRIOR_KINDS = ("off", "gaussian")
# the sampling settings that configure it (rdpm-sample --init-prior, --init-prior-guidance, --init-prior-scale)
PRIOR_SETTINGS = ("init_prior", "init_prior_guidance", "init_prior_scale")


class GaussianInitPrior:
    """Per-class mean, rank-r factor and residual standard deviation of flattened latents (module docstring)."""

    def __init__(self, means: torch.Tensor, factors: torch.Tensor, residual_std: torch.Tensor, latent_shape,
                 num_images: int | None = None):
        Y, D = means.shape
        if factors.ndim != 3 or factors.shape[0] != Y or factors.shape[2] != D or residual_std.shape != (Y,):
            raise ValueError(f"init prior: inconsistent shapes means {tuple(means.shape)}, factors "
                             f"{tuple(factors.shape)}, residual_std {tuple(residual_std.shape)}")
        if math.prod(latent_shape) != D:
            raise ValueError(f"init prior: latent shape {tuple(latent_shape)} does not hold {D} values")
        for name, t in (("means", means), ("factors", factors), ("residual_std", residual_std)):
            if not torch.isfinite(t).all():
                raise ValueError(f"init prior: {name} hold NaN or inf values")
        self.means, self.factors = means.float(), factors.float()
        self.residual_std = residual_std.float()
        self.latent_shape = tuple(int(s) for s in latent_shape)
        self.num_images = num_images                    # how many training latents it was fitted on (a record)

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def rank(self) -> int:
        return self.factors.shape[1]

    @classmethod
    def fit(cls, latents: torch.Tensor, labels: torch.Tensor, num_classes: int, rank: int) -> "GaussianInitPrior":
        """From latents (N, C, H, W) and their classes (N,): every class needs at least two images."""
        x = latents.flatten(1).double()
        labels = torch.as_tensor(labels).long()
        if not torch.isfinite(x).all():
            raise ValueError("init prior: the latents hold NaN or inf values")
        D = x.shape[1]
        means, factors, rest = [], [], []
        for y in range(num_classes):
            xy = x[labels == y]
            if len(xy) < 2:
                raise ValueError(f"init prior: class {y} has {len(xy)} image(s); fitting needs at least 2 per class")
            mu = xy.mean(0)
            # principal directions of the class: SVD of the centred data, scaled so that FᵀF is the covariance
            _, s, vh = torch.linalg.svd((xy - mu) / math.sqrt(len(xy) - 1), full_matrices=False)
            r = min(rank, len(s))
            f = torch.zeros(rank, D, dtype=torch.float64)
            f[:r] = s[:r, None] * vh[:r]
            means.append(mu)
            factors.append(f)
            rest.append(math.sqrt(float((s[r:] ** 2).sum()) / D))
        return cls(torch.stack(means), torch.stack(factors), torch.tensor(rest), latents.shape[1:], len(x))

    def sample(self, labels: torch.Tensor, generators: list, guidance: float = 1.0, scale: float = 1.0) -> torch.Tensor:
        """Latents (B, C, H, W), float32 on CPU: image i from ``generators[i]`` (module docstring)."""
        labels = torch.as_tensor(labels).long().cpu()
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"init prior: class labels must lie in [0, {self.num_classes - 1}]")
        center = self.means.mean(0)
        out = []
        for y, g in zip(labels.tolist(), generators):
            z = torch.randn(self.rank, generator=g)
            e = torch.randn(self.means.shape[1], generator=g)
            dev = z @ self.factors[y] + self.residual_std[y] * e
            out.append(center + guidance * (self.means[y] - center) + scale * dev)
        return torch.stack(out).view(len(out), *self.latent_shape)

    def save(self, directory) -> Path:
        """``init_prior.safetensors`` in ``directory`` (fp16, written atomically)."""
        from safetensors.torch import save_file

        from .files import atomic_path
        path = Path(directory) / PRIOR_FILE
        tensors = {"means": self.means, "factors": self.factors, "residual_std": self.residual_std}
        with atomic_path(path) as tmp:
            meta = {"latent_shape": ",".join(map(str, self.latent_shape)), "kind": "gaussian"}
            if self.num_images is not None:
                meta["num_images"] = str(self.num_images)
            save_file({k: v.to(torch.float16).contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, directory) -> "GaussianInitPrior | None":
        """The prior saved in ``directory``, or None if it has none."""
        from safetensors import safe_open
        path = Path(directory) / PRIOR_FILE
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k).float() for k in ("means", "factors", "residual_std")}
            shape = tuple(int(s) for s in meta["latent_shape"].split(","))
            num_images = int(meta["num_images"]) if "num_images" in meta else None
        except Exception as e:                          # truncated file, missing tensor or metadata
            raise ValueError(f"{path} is not a readable init prior ({type(e).__name__}: {e}): refit it with "
                             "rdpm-fit-init-prior or delete it") from None
        return cls(tensors["means"], tensors["factors"], tensors["residual_std"], shape, num_images)

    def check_matches(self, num_classes: int, latent_shape, source: str) -> None:
        """Refuse a prior fitted for another class count or latent shape."""
        if self.num_classes != num_classes or self.latent_shape != tuple(latent_shape):
            raise ValueError(f"{source}: the init prior has {self.num_classes} classes and latent shape "
                             f"{self.latent_shape}, the generator {num_classes} and {tuple(latent_shape)}: refit it "
                             "with rdpm-fit-init-prior for this generator")


def init_tokens(ctx, latents: torch.Tensor) -> torch.Tensor:
    """The encoder's init map for ``latents`` (SPEC §5, Eq. 15): argmax_k ⟨C[k]_b, x_b⟩ per block."""
    from .chain import best_entries
    return best_entries(ctx, latents.to(ctx.state.device), "dot")


# ------------------------------------------------------------------------------ rdpm-fit-init-prior
def parse_args(argv=None):
    import argparse

    from . import cli
    from .cli import positive_int
    p = cli.ArgumentParser(prog="rdpm-fit-init-prior", description=__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", required=True, help="generator directory; the prior is written into it as " + PRIOR_FILE)
    p.add_argument("--data-path", required=True, help="the generator's training images (ImageFolder root, or "
                   "cifar10-download:ROOT:train); never the images results are reported on")
    p.add_argument("--num-images", type=positive_int, default=None,
                   help="fit on the first N images in class-interleaved order, a class-balanced subset (default: all)")
    p.add_argument("--rank", type=positive_int, default=256, help="principal directions kept per class")
    p.add_argument("--batch-size", type=positive_int, default=250, help="images per autoencoder call")
    p.add_argument("--backbone", default=None, help="backbone dir (default: the one recorded in generator.json)")
    p.add_argument("--force", action="store_true", help="replace an existing " + PRIOR_FILE)
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


@torch.no_grad()
def run(a) -> Path:
    from .data import build_dataset, class_interleaved_order
    from .sample import Sampler
    ckpt = Path(a.ckpt)
    out_dir = ckpt if ckpt.is_dir() else ckpt.parent
    if (out_dir / PRIOR_FILE).exists() and not a.force:
        raise ValueError(f"{out_dir / PRIOR_FILE} exists: pass --force to replace it")
    sampler = Sampler(a.ckpt, backbone=a.backbone, device=a.device, mixed_precision="no")
    tok = sampler.tokenizer
    if not tok.spec.has_init_token:
        raise ValueError(f"{a.ckpt}: its tokens have no init map (init is not codebook), so an init prior has nothing to draw")
    ds = build_dataset(a.data_path, tok.image_size)
    order = class_interleaved_order(ds.targets)
    if a.num_images is not None:
        if a.num_images > len(order):
            raise ValueError(f"--num-images {a.num_images} but {a.data_path} holds {len(order)} images: pass at most that")
        order = order[:a.num_images]
    labels = torch.tensor([int(ds.targets[i]) for i in order])
    if int(labels.max()) >= sampler.num_classes:
        raise ValueError(f"{a.data_path} has class {int(labels.max())} but the generator {sampler.num_classes} classes: "
                         "pass the images it was trained on")
    latents = []
    for s in range(0, len(order), a.batch_size):
        images = torch.stack([ds[i][0] for i in order[s:s + a.batch_size]])
        latents.append(tok.autoencoder.encode(images.to(a.device)).float().cpu())
        print(f"encoded {min(s + a.batch_size, len(order))}/{len(order)}", flush=True)
    prior = GaussianInitPrior.fit(torch.cat(latents), labels, sampler.num_classes, a.rank)
    path = prior.save(out_dir)
    print(f"wrote {path} (Gaussian init prior: {sampler.num_classes} classes, rank {a.rank}, {len(order)} images)")
    return path


def main(argv=None):
    from .cli import run_command
    a = parse_args(argv)
    return run_command("rdpm-fit-init-prior", lambda: run(a))


if __name__ == "__main__":
    main()
