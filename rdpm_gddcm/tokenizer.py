"""gDDCM tokenizer: a frozen autoencoder + frozen backbone + a plan, codebooks and a grid.

``Tokenizer.encode`` runs the chain (SPEC §2) with the residual-argmax chooser and returns the
tokens *and* the reconstruction that ``Tokenizer.decode`` will produce from them (same code path,
bit for bit for the same batch). ``header()`` is the token-stream header of SPEC §8 (a
``TokenHeader``); ``Tokenizer.from_header`` is the only way back from tokens to a tokenizer, and
``check_header`` refuses tokens made with other models or settings.

The shared command-line flags of rdpm-tokenize / rdpm-reconstruct / rdpm-codec live here too.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

import torch

from .chain import INIT_KINDS, SELECTIONS, ChainSpec, EncodeChooser, LookupChooser, run_chain
from .cli import codebook_size, finite_float, grid_spec, nonneg_int, positive_float, positive_int, probability
from .codebooks import GENERATOR_VERSION, GENERATOR_VERSIONS, Grid, VirtualCodebook
from .plans import PLAN_KINDS, Plan, PlanConfig, build_plan
from .precision import CHOICES, HELP as PRECISION_HELP
from .header import TokenFormatError, TokenHeader, encoder_environment
from .token_io import bits_for


@dataclass
class TokenizerConfig:
    """Tokenizer settings (DESIGN "Tokenizer flags"). ``None`` knobs take the family's default."""

    plan: str = "fixed-point"
    p: float = 0.0
    num_steps: int = 100
    codebook_size: int = 1024
    grid: str = "1x1"
    selection: str = "l2"
    init: str = "codebook"
    codebook_seed: int = 0
    codebook_version: str = GENERATOR_VERSION   # new tokens: v2 (the same bytes on every machine)
    t_start: float | None = None
    t_end: float | None = None
    t_fixed: float | None = None
    delta_min: float | None = None
    delta_max: float | None = None
    intervals: int = 16
    sigma_max_r: float = 10.0      # see PlanConfig
    rho: float = 7.0
    descent_steps: int = 0         # see PlanConfig
    descent_p: float = 0.35
    final_steps: int = 1
    final_solver: str = "ddim"
    conditional: bool = False      # call the backbone with the image's class (else the null class)

    def plan_config(self) -> PlanConfig:
        names = {f.name for f in fields(PlanConfig)}
        d = {k: v for k, v in asdict(self).items() if k in names}
        d["kind"] = self.plan
        if self.plan == "fixed-point" and self.p != 0.0:
            d["p"] = self.p
        return PlanConfig(**d)


def add_tokenizer_args(p: argparse.ArgumentParser):
    d = TokenizerConfig()
    g = p.add_argument_group("tokenizer (SPEC §2-§7)")
    g.add_argument("--plan", default=d.plan, choices=PLAN_KINDS,
                   help="fixed-point = Algorithm 2 (p=0); trajectory = Algorithm 1 (0<p<1); ddcm = DDIM η=1 baseline (vp only)")
    g.add_argument("--p", type=probability, default=None, help="backtrack parameter (0 for fixed-point; 0.5 = reverse SDE)")
    g.add_argument("--num-steps", type=positive_int, default=d.num_steps, help="N: token maps per image (backbone calls)")
    g.add_argument("--codebook-size", type=codebook_size, default=d.codebook_size, help="K: entries per step codebook")
    g.add_argument("--grid", type=grid_spec, default=d.grid, help="HxW blocks per token map (1x1 = 1D tokens)")
    g.add_argument("--selection", default=d.selection, choices=SELECTIONS,
                   help="dot = argmax<C,x-x̂0> (paper); l2 = nearest to the ideal vector c* (exact form); "
                        "jacobian = argmax<C,Jᵀ(x-x̂0)> at the next call (ours; +1 backward pass per step, encode only)")
    g.add_argument("--init", default=d.init, choices=INIT_KINDS, help="initial state (SPEC §5)")
    g.add_argument("--codebook-seed", type=int, default=d.codebook_seed)
    g.add_argument("--codebook-version", default=d.codebook_version, choices=GENERATOR_VERSIONS,
                   help="codebook generator: v2 gives the same bytes on every CPU and GPU; v1 (files written before "
                        "v2) depends on the CPU's vector instructions, kept to reproduce old results")
    g.add_argument("--t-start", type=finite_float, default=None, help="trajectory: first time T_r (default: family max)")
    g.add_argument("--t-end", type=finite_float, default=None, help="trajectory: last net time T_t")
    g.add_argument("--t-fixed", type=finite_float, default=None, help="fixed-point: the time T_s")
    g.add_argument("--delta-min", type=positive_float, default=None, help="fixed-point: finest Δ (Eq. 9)")
    g.add_argument("--delta-max", type=positive_float, default=None, help="fixed-point: coarsest Δ (Eq. 9)")
    g.add_argument("--intervals", type=positive_int, default=d.intervals, help="fixed-point: P intervals (continuous families)")
    g.add_argument("--sigma-max-r", type=positive_float, default=d.sigma_max_r, help="σ_max of Eq. 10/13 (step-count ratio finest:coarsest)")
    g.add_argument("--rho", type=positive_float, default=d.rho, help="EDM spacing exponent")
    g.add_argument("--descent-steps", type=nonneg_int, default=d.descent_steps,
                   help="fixed-point: the first M of the N steps descend from --t-start to T_s as a trajectory "
                        "(ours; 0 = Algorithm 2, which starts at T_s from the init token)")
    g.add_argument("--descent-p", type=probability, default=d.descent_p, help="fixed-point: backtrack p of that descent")
    g.add_argument("--final-steps", type=positive_int, default=d.final_steps, help="ODE steps of the final sampler")
    g.add_argument("--final-solver", default=d.final_solver, choices=["ddim", "heun"])
    g.add_argument("--conditional", action="store_true",
                   help="condition the backbone on each image's class (decoding then needs the label)")


def tokenizer_config_from_args(a) -> TokenizerConfig:
    names = {f.name for f in fields(TokenizerConfig)}
    d = {k: v for k, v in vars(a).items() if k in names and v is not None}
    if "p" not in d:
        d["p"] = 0.5 if a.plan == "trajectory" else 0.0
    return TokenizerConfig(**d)


# ------------------------------------------------------------------------------------------ models
def add_model_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("models")
    g.add_argument("--backbone", required=True, help="backbone dir (backbone.json) or diffusers-unet:/diffusers-dit: path or id")
    g.add_argument("--autoencoder", default=None, help="pixels | taef2:DIR | hf:ID_OR_PATH (default: the one the backbone was trained with)")
    g.add_argument("--image-size", type=positive_int, default=None, help="image size (default: the backbone's training size)")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    g.add_argument("--mixed-precision", default="auto", choices=CHOICES,
                   help=f"backbone {PRECISION_HELP}; decoding replays the precision recorded in the token header")


def load_models(backbone_spec: str, autoencoder_spec: str | None, image_size: int | None, device="cpu",
                mixed_precision: str = "no"):
    """(backbone, autoencoder, image_size) with the defaults recorded in backbone.json."""
    from .backbones import load_backbone
    backbone = load_backbone(backbone_spec, device)
    autoencoder = autoencoder_for(backbone, autoencoder_spec, device, backbone_spec)
    if image_size is None:
        meta = getattr(backbone, "meta", {})
        image_size = meta.get("data", {}).get("image_size") or backbone.latent_shape[-1] * autoencoder.downsample
    backbone.set_precision(mixed_precision, device)
    return backbone, autoencoder, image_size


def autoencoder_for(backbone, autoencoder_spec: str | None, device="cpu", backbone_name: str = "the backbone"):
    """The autoencoder a backbone works in: ``autoencoder_spec``, or the one its backbone.json records;
    refused when its weights are not the ones the backbone was trained with (sha256 in backbone.json)."""
    from .autoencoders import load_autoencoder
    meta = getattr(backbone, "meta", {})
    if autoencoder_spec is None:
        autoencoder_spec = meta.get("autoencoder_spec", "pixels")
        if autoencoder_spec == "pixels" and backbone.latent_shape[0] != 3:
            raise ValueError(f"backbone {backbone_name} works in a {backbone.latent_shape[0]}-channel latent and records no "
                             "autoencoder: pass --autoencoder (e.g. hf:stabilityai/sd-vae-ft-ema or hf:PIPELINE_DIR)")
    try:
        autoencoder = load_autoencoder(autoencoder_spec, device=device)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}\n(the backbone {backbone_name} was trained with --autoencoder "
                                f"{autoencoder_spec!r}; pass --autoencoder with that autoencoder's location)") from None
    want = meta.get("autoencoder", {}).get("sha256")
    if want and autoencoder.identity().get("sha256") != want:
        raise ValueError(f"autoencoder {autoencoder_spec!r} (sha256 {autoencoder.identity().get('sha256')}) is not the "
                         f"one backbone {backbone_name} was trained with (sha256 {want})")
    return autoencoder


class Tokenizer:
    """Encode images to gDDCM tokens and back (SPEC §2-§8)."""

    def __init__(self, backbone, autoencoder, cfg: TokenizerConfig, image_size: int, device="cpu",
                 plan: Plan | None = None):
        """``plan``: a stored plan to replay (decoding); by default it is built from ``cfg``."""
        self.backbone, self.autoencoder, self.cfg = backbone, autoencoder, cfg
        self.image_size, self.device = image_size, torch.device(device)
        lat = tuple(autoencoder.latent_shape(image_size))
        if lat != tuple(backbone.latent_shape):
            raise ValueError(f"the autoencoder turns {image_size}px images into latents {lat}, but the backbone "
                             f"expects {tuple(backbone.latent_shape)}: check --image-size / --autoencoder")
        if cfg.init not in INIT_KINDS:
            raise ValueError(f"unknown init {cfg.init!r}")
        self.family = backbone.family
        self.plan: Plan = plan if plan is not None else build_plan(cfg.plan_config(), self.family)
        self.grid = Grid.parse(lat, cfg.grid)
        self.codebook = VirtualCodebook(cfg.codebook_seed, int(torch.tensor(lat).prod()), version=cfg.codebook_version)
        self.spec = ChainSpec(self.plan, self.codebook, self.grid, cfg.codebook_size, init=cfg.init)

    @classmethod
    def from_header(cls, header, backbone, autoencoder=None, device="cpu") -> "Tokenizer":
        """The tokenizer a token header describes, with its stored plan (replayed, not recomputed).

        ``header``: a ``TokenHeader`` or its JSON. ``backbone``: a spec, or a loaded backbone (which is
        switched to the header's precision: decoding replays the encoder's arithmetic, whatever
        ``--mixed-precision auto`` resolves to on this machine); ``autoencoder``: a loaded one, a
        spec, or None for the backbone's own. Refuses models that differ from the header's."""
        h = TokenHeader.from_json(header)
        if isinstance(backbone, str):
            backbone, ae, _ = load_models(backbone, autoencoder if isinstance(autoencoder, str) else None,
                                          h.image_size, device, h.precision_mode)
            autoencoder = autoencoder if autoencoder is not None and not isinstance(autoencoder, str) else ae
        else:
            backbone.set_precision(h.precision_mode, device)
            if autoencoder is None or isinstance(autoencoder, str):
                autoencoder = autoencoder_for(backbone, autoencoder, device)
        # the models first: a backbone of another family would otherwise surface as a plan-range error
        fam, mine = h.family.get("name"), backbone.family.name
        if fam != mine:
            raise TokenFormatError(f"tokens were made with a {fam} backbone, but --backbone is a {mine} one: decode "
                                   f"with the backbone that encoded them ({h.backbone.get('name')}, sha256 "
                                   f"{h.backbone.get('sha256')})")
        want = h.backbone.get("sha256")
        if want and want != backbone.weights_hash():
            raise TokenFormatError(f"tokens were made with backbone weights {want}, but --backbone has "
                                   f"{backbone.weights_hash()}: decode with the backbone that encoded them")
        names = {f.name for f in fields(TokenizerConfig)}
        cfg = TokenizerConfig(**{k: v for k, v in h.plan["config"].items() if k in names})
        cfg.plan, cfg.codebook_size, cfg.grid = h.plan["kind"], h.codebook_size, f"{h.grid[0]}x{h.grid[1]}"
        cfg.init, cfg.selection, cfg.conditional = h.init, h.selection, h.conditional
        cfg.codebook_seed, cfg.codebook_version = h.codebook_seed, h.codebook_version
        tok = cls(backbone, autoencoder, cfg, h.image_size, device, plan=Plan.from_json(h.plan))
        tok.check_header(h)
        return tok

    # ---- sizes
    @property
    def num_token_rows(self) -> int:
        return self.spec.num_token_rows

    @property
    def bits_per_image(self) -> int:
        return self.num_token_rows * self.grid.num_blocks * bits_for(self.cfg.codebook_size)

    @property
    def bpp(self) -> float:
        return self.bits_per_image / (self.image_size ** 2)

    # ---- header (SPEC §8)
    def header(self, label: int | None = None) -> TokenHeader:
        return TokenHeader(
            codebook={"generator_version": self.codebook.version, "seed": self.cfg.codebook_seed},
            family=self.family.to_json(),
            backbone={"name": self.backbone.name, "sha256": self.backbone.weights_hash()},
            autoencoder={k: self.autoencoder.identity().get(k) for k in ("name", "sha256")},
            backbone_dtype=str(self.backbone.autocast_dtype or "float32").replace("torch.", ""),
            image_shape=[3, self.image_size, self.image_size],
            latent_shape=list(self.grid.latent_shape),
            grid=[self.grid.gh, self.grid.gw],
            codebook_sizes=[self.cfg.codebook_size] * len(self.plan),
            num_token_rows=self.num_token_rows,
            plan=self.plan.to_json(),
            init=self.cfg.init,
            selection=self.cfg.selection,
            conditional=self.cfg.conditional,
            label=label,
            encoder_environment=encoder_environment(self.device),
        )

    def check_header(self, header, source: str = "tokens"):
        """Refuse tokens that these models/settings would decode into garbage."""
        diff = TokenHeader.from_json(header, source).mismatch(self.header())
        if diff:
            what, a, b = diff
            raise TokenFormatError(f"{source} were made with a different {what}: {str(a)[:120]} vs this decoder's "
                                   f"{str(b)[:120]}. Decode with the same --backbone/--autoencoder and tokenizer flags")

    # ---- encode / decode
    def _labels(self, labels, B):
        if not self.cfg.conditional or labels is None:
            return None
        return torch.as_tensor(labels, device=self.device).long().reshape(B)

    @torch.no_grad()
    def encode_latent(self, x: torch.Tensor, labels=None, record: bool = False):
        """Latent targets (B, C, H, W) -> ChainOutput (tokens (B, R, G), reconstructed latent)."""
        if not torch.isfinite(x).all():
            raise ValueError("the image batch contains NaN or inf values")
        B = x.shape[0]
        return run_chain(self.backbone, self.spec, EncodeChooser(x.to(self.device), self.cfg.selection), B,
                         self._labels(labels, B), self.device, record=record)

    @torch.no_grad()
    def tokenize_images(self, images: torch.Tensor, labels=None, record: bool = False):
        """Images in [-1, 1] -> ChainOutput (tokens, reconstructed latent), without decoding it: what a
        dataset tokenizer needs (with a VAE latent the decode is a large share of ``encode``'s time)."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] != self.image_size:
            raise ValueError(f"expected images (B, 3, {self.image_size}, {self.image_size}), got {tuple(images.shape)}")
        return self.encode_latent(self.autoencoder.encode(images.to(self.device)), labels, record)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, labels=None, record: bool = False):
        """Images in [-1, 1] -> (tokens (B, R, G) int64, reconstructed images in [-1, 1], ChainOutput)."""
        out = self.tokenize_images(images, labels, record)
        return out.tokens, self.autoencoder.decode(out.latent), out

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, labels=None) -> torch.Tensor:
        tokens = torch.as_tensor(tokens).long()
        if tokens.ndim == 2:
            tokens = tokens[None]
        R, G = self.num_token_rows, self.grid.num_blocks
        if tokens.shape[1:] != (R, G):
            raise TokenFormatError(f"tokens have shape {tuple(tokens.shape[1:])} per image, these settings need ({R}, {G})")
        if (tokens < 0).any() or (tokens >= self.cfg.codebook_size).any():
            raise TokenFormatError(f"token values outside [0, {self.cfg.codebook_size})")
        B = tokens.shape[0]
        out = run_chain(self.backbone, self.spec, LookupChooser(tokens), B, self._labels(labels, B), self.device)
        return self.autoencoder.decode(out.latent)
