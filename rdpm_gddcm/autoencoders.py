"""Autoencoders: the first of the three swappable parts (DESIGN "The shape", "Three swappable
parts"). The gDDCM chain runs on whatever ``encode`` returns (SPEC notation: ``x`` is an image in
[-1,1] or its VAE latent); token streams record ``identity()`` (SPEC §8) so decoding can refuse a
stream made with different weights.

One interface, three implementations, one loader::

    ae = load_autoencoder("pixels" | "taef2:DIR" | "tae:DIR" | "hf:ID_OR_PATH")
    z = ae.encode(images)      # (B,3,H,W) in [-1,1] -> (B, C, H/d, W/d) float32, scaled
    x = ae.decode(z)           # -> (B,3,H,W) in [-1,1], float32, clamped

Latent scaling follows diffusers: ``latent = (raw - shift_factor) * scaling_factor`` so that a
diffusion model sees roughly unit-variance data; the factor comes from the model's config (or,
for the TAE family, from ``TAE_SCALING_FACTORS`` below).

Identity: ``name`` is a human label; ``sha256`` is the content hash of the loaded weights (every
tensor of the state dict, by sorted key, as float32 bytes), so the same weights give the same
hash whatever the file format, path or dtype they were loaded from. Compare the hash, not the
name, to decide whether two latents are compatible.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re

import torch
from torch import nn

from . import tae as _tae

SPEC_FORMS = ("'pixels'", "'taef2:DIR'", "'tae:DIR'", "'hf:ID_OR_PATH'")

# Std of *raw* TAE latents measured on 500 CIFAR-10 val images (benchmarks/bench_autoencoder.py,
# benchmarks/results/autoencoder.json): taef2 at 64 px input std 0.854 (mean 0.027); at 32 px
# 0.907, at 128 px 0.770. Already close to 1, so no rescaling: 1/0.854 would buy little and
# make our latents differ from every other user of taef2. Unknown TAEs default to 1.0 too.
TAE_SCALING_FACTORS = {"taef2": 1.0}

# Tolerance for images outside [-1,1]: resampling (bicubic) overshoots by a few percent, which is
# clipped silently; far outside means the caller passed [0,255] or unnormalised data.
_RANGE_SLACK = 0.5


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 hex of every tensor in ``module.state_dict()`` (sorted keys, float32 bytes)."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        t = value.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{key}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class Autoencoder(nn.Module):
    """Frozen image autoencoder: ``encode(images[-1,1]) -> latent`` and back (DESIGN).

    Subclasses implement ``_encode_raw`` (images in [-1,1] -> raw latent) and ``_decode_raw``
    (raw latent -> images ~[-1,1]); this class does validation, scaling, no-grad, clamping."""

    name: str = "autoencoder"
    latent_channels: int = 3
    downsample: int = 1
    scaling_factor: float = 1.0
    shift_factor: float = 0.0

    def __init__(self):
        super().__init__()
        # Parameter-free autoencoders still need to know their device: a 0-size buffer moves
        # with .to() and is never saved.
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        self._sha256: str | None = None

    @property
    def device(self) -> torch.device:
        return self._device_probe.device

    def _freeze(self) -> "Autoencoder":
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Autoencoder":
        # Frozen part: never switch to train mode (GroupNorm/BatchNorm, dropout stay fixed),
        # even when a parent module calls .train().
        return super().train(False)

    # ---- interface ----
    def latent_shape(self, image_size: int) -> tuple[int, int, int]:
        """(C, h, w) of the latent of a square ``image_size`` image."""
        self._check_size(image_size, image_size)
        s = image_size // self.downsample
        return (self.latent_channels, s, s)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) float in [-1,1] -> scaled latent (B,C,H/d,W/d) float32 (deterministic)."""
        self._check_images(images)
        x = images.to(self.device, torch.float32).clamp(-1.0, 1.0)
        raw = self._encode_raw(x).float()
        return (raw - self.shift_factor) * self.scaling_factor

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Scaled latent (B,C,h,w) -> images (B,3,h*d,w*d) float32 clamped to [-1,1]."""
        self._check_latent(latent)
        z = latent.to(self.device, torch.float32) / self.scaling_factor + self.shift_factor
        return self._decode_raw(z).float().clamp(-1.0, 1.0)

    def identity(self) -> dict:
        """What a token stream header stores about the autoencoder (SPEC §8)."""
        if self._sha256 is None and any(True for _ in self.state_dict()):
            self._sha256 = state_dict_sha256(self)  # cached: hashing a big VAE takes ~1 s
        ident = {"name": self.name, "sha256": self._sha256,
                 "scaling_factor": float(self.scaling_factor),
                 "latent_channels": int(self.latent_channels), "downsample": int(self.downsample)}
        if self.shift_factor:
            ident["shift_factor"] = float(self.shift_factor)
        return ident

    def _encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---- validation: one clear message naming the thing and the fix (DESIGN "Errors") ----
    def _check_size(self, h: int, w: int) -> None:
        d = self.downsample
        if h % d or w % d:
            raise ValueError(
                f"image size {h}x{w} is not divisible by the {self.name} autoencoder's "
                f"downsample factor {d}: use --image-size a multiple of {d}")

    def _check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"{self.name}.encode expects a torch.Tensor, "
                            f"got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}.encode expects images shaped (B,3,H,W), got {tuple(images.shape)}: "
                "add a batch dimension with x[None] and convert grayscale/RGBA to RGB")
        if not images.is_floating_point():
            raise ValueError(
                f"{self.name}.encode expects float images in [-1,1], got dtype {images.dtype}: "
                "convert uint8 with x.float() / 127.5 - 1")
        if not torch.isfinite(images).all():
            raise ValueError(f"{self.name}.encode got images containing NaN/inf")
        lo, hi = float(images.min()), float(images.max())
        if lo < -1 - _RANGE_SLACK or hi > 1 + _RANGE_SLACK:
            raise ValueError(
                f"{self.name}.encode expects images in [-1,1], got values in [{lo:.3g}, {hi:.3g}]: "
                "for [0,255] data use x / 127.5 - 1, for [0,1] data use x * 2 - 1")
        self._check_size(images.shape[2], images.shape[3])

    def _check_latent(self, latent: torch.Tensor) -> None:
        if not isinstance(latent, torch.Tensor) or latent.dim() != 4 \
                or latent.shape[1] != self.latent_channels:
            shape = (tuple(latent.shape) if isinstance(latent, torch.Tensor)
                     else type(latent).__name__)
            raise ValueError(
                f"{self.name}.decode expects a latent shaped (B,{self.latent_channels},h,w), got "
                f"{shape}: was it made by a different autoencoder?")
        if not torch.isfinite(latent).all():
            raise ValueError(f"{self.name}.decode got a latent containing NaN/inf")


class PixelAutoencoder(Autoencoder):
    """Identity: the chain runs in pixel space (the gDDCM paper's CIFAR-10 setting)."""

    name = "pixels"
    latent_channels = 3
    downsample = 1
    scaling_factor = 1.0

    def __init__(self):
        super().__init__()
        self._freeze()

    def _encode_raw(self, x):
        return x.clone()

    def _decode_raw(self, z):
        return z.clone()


class TAEAutoencoder(Autoencoder):
    """The TAE family (taef2: 32 channels, 8x; ``tae.py``). The released networks work in [0,1]
    images; conversion to the project's [-1,1] happens here."""

    downsample = 8

    def __init__(self, encoder: _tae.TAEEncoder, decoder: _tae.TAEDecoder, name: str = "taef2",
                 scaling_factor: float | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.name = name
        self.latent_channels = encoder.latent_channels
        self.scaling_factor = float(TAE_SCALING_FACTORS.get(name, 1.0)
                                    if scaling_factor is None else scaling_factor)
        self._freeze()

    @classmethod
    def from_dir(cls, path: str, name: str | None = None) -> "TAEAutoencoder":
        """Load ``<name>_encoder.pth`` / ``<name>_decoder.pth`` from ``path`` (a directory, or
        the encoder file itself); ``name=None`` finds the single ``*_encoder.pth`` there."""
        what = name or "TAE"
        hint = (f"pass --autoencoder {name or 'tae'}:DIR with DIR holding "
                f"{name or '<name>'}_encoder.pth and {name or '<name>'}_decoder.pth"
                + (" (they ship in ../shared/weights/taef2/)" if name == "taef2" else ""))
        if os.path.isfile(path) and path.endswith("_encoder.pth"):
            path, fname = os.path.split(path)
            name = name or fname[: -len("_encoder.pth")]
        if not os.path.isdir(path or "."):
            raise FileNotFoundError(f"{what} weights not found at {path!r}: {hint}")
        if name is None:
            found = sorted(glob.glob(os.path.join(glob.escape(path), "*_encoder.pth")))
            if len(found) != 1:
                raise FileNotFoundError(
                    f"TAE weights: expected exactly one *_encoder.pth in {path!r}, found "
                    f"{[os.path.basename(f) for f in found]}: {hint} "
                    "(or pass the encoder file itself: tae:DIR/<name>_encoder.pth)")
            name = os.path.basename(found[0])[: -len("_encoder.pth")]
        files = [os.path.join(path, f"{name}_{part}.pth") for part in ("encoder", "decoder")]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise FileNotFoundError(f"{what} weights not found at {missing[0]!r}: {hint}")
        try:
            enc, dec = _tae.build_tae(*[_tae.load_state_dict_file(f) for f in files])
        except (RuntimeError, ValueError, KeyError) as e:  # unreadable file or key mismatch
            raise ValueError(f"{files[0]} / {files[1]} are not loadable TAE weights ({e}): "
                             f"{hint}") from e
        return cls(enc, dec, name=name)

    def _encode_raw(self, x):
        return self.encoder((x + 1) / 2)

    def _decode_raw(self, z):
        return self.decoder(z) * 2 - 1


class DiffusersAutoencoder(Autoencoder):
    """A diffusers ``AutoencoderKL`` (SD/SDXL VAEs) or ``AutoencoderTiny`` (TAESD in diffusers
    format). Both take and return [-1,1] images. KL encode uses the posterior mode (its mean), so
    encoding is deterministic - the tokenizer must be a function of the image."""

    SUPPORTED = ("AutoencoderKL", "AutoencoderTiny")

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model = model
        self.name = name
        cfg = model.config
        self.class_name = type(model).__name__
        self.latent_channels = int(cfg.latent_channels)
        channels = cfg.block_out_channels if self.class_name == "AutoencoderKL" \
            else cfg.encoder_block_out_channels  # Tiny: one stride-2 conv per block but the first
        self.downsample = 2 ** (len(channels) - 1)
        self.scaling_factor = float(getattr(cfg, "scaling_factor", None) or 1.0)
        self.shift_factor = float(getattr(cfg, "shift_factor", None) or 0.0)
        self._freeze()

    @classmethod
    def from_pretrained(cls, id_or_path: str) -> "DiffusersAutoencoder":
        """A local directory (the VAE itself or a pipeline with a ``vae/`` subfolder) or a hub id
        (tried as the VAE repo, then its ``vae`` subfolder)."""
        import diffusers  # deferred: importing diffusers costs ~2 s and pixels/TAE never need it

        hint = ("pass --autoencoder hf:DIR with a directory written by save_pretrained "
                "(config.json + weights), a pipeline directory with vae/, or a hub id "
                "(needs network access or a populated HF cache)")
        local = os.path.isdir(id_or_path)
        if local:
            subfolders = [None] if os.path.isfile(os.path.join(id_or_path, "config.json")) \
                else ["vae"] if os.path.isfile(os.path.join(id_or_path, "vae", "config.json")) \
                else []
            if not subfolders:
                raise FileNotFoundError(f"no diffusers autoencoder config.json in {id_or_path!r} "
                                        f"(nor in its vae/ subfolder): {hint}")
        elif not re.fullmatch(r"[A-Za-z0-9_-][\w.-]*(/[\w.-]+)?", id_or_path):
            # not shaped like a hub id ("org/name"), so it was meant as a local path
            raise FileNotFoundError(f"diffusers autoencoder directory {id_or_path!r} not found: "
                                    f"{hint}")
        else:
            subfolders = [None, "vae"]
        errors = []
        for sub in subfolders:
            try:
                cfg = diffusers.AutoencoderKL.load_config(id_or_path, subfolder=sub)
            except (OSError, ValueError, EnvironmentError) as e:
                errors.append(f"{sub or '.'}: {e}")
                continue
            class_name = cfg.get("_class_name")
            if class_name not in cls.SUPPORTED:
                raise ValueError(f"{id_or_path!r} holds a diffusers {class_name!r}, not one of "
                                 f"{cls.SUPPORTED}: point hf: at an image VAE")
            model_cls = getattr(diffusers, class_name)
            # diffusers warns about AutoencoderTiny's own saved `block_out_channels` key: noise
            verbosity = diffusers.utils.logging.get_verbosity()
            diffusers.utils.logging.set_verbosity_error()
            try:
                model = model_cls.from_pretrained(id_or_path, subfolder=sub,
                                                  torch_dtype=torch.float32)
            finally:
                diffusers.utils.logging.set_verbosity(verbosity)
            label = id_or_path if not local else os.path.basename(os.path.normpath(id_or_path))
            return cls(model, name=f"hf:{label}" + (f"/{sub}" if sub else ""))
        raise FileNotFoundError(f"could not load a diffusers autoencoder from {id_or_path!r} "
                                f"({'; '.join(errors)[:500]}): {hint}")

    def _encode_raw(self, x):
        out = self.model.encode(x)
        return out.latent_dist.mode() if hasattr(out, "latent_dist") else out.latents

    def _decode_raw(self, z):
        return self.model.decode(z).sample


def load_autoencoder(spec: str, device: str | torch.device = "cpu") -> Autoencoder:
    """``pixels`` | ``taef2:DIR`` | ``tae:DIR`` (any TAE-family dir / ``<name>_encoder.pth``) |
    ``hf:ID_OR_PATH`` (diffusers AutoencoderKL / AutoencoderTiny) -> a frozen Autoencoder."""
    if not isinstance(spec, str) or not spec:
        raise ValueError("autoencoder spec must be a non-empty string, one of "
                         + ", ".join(SPEC_FORMS))
    kind, sep, arg = spec.partition(":")
    if spec == "pixels":
        ae: Autoencoder = PixelAutoencoder()
    elif kind in ("taef2", "tae", "hf") and not (sep and arg):
        raise ValueError(f"autoencoder spec {spec!r} needs a location: use {kind}:DIR"
                         + (" or hf:HUB_ID" if kind == "hf" else "")
                         + (" (e.g. taef2:../shared/weights/taef2)" if kind == "taef2" else ""))
    elif kind == "taef2":
        ae = TAEAutoencoder.from_dir(os.path.expanduser(arg), name="taef2")
    elif kind == "tae":
        ae = TAEAutoencoder.from_dir(os.path.expanduser(arg))
    elif kind == "hf":
        ae = DiffusersAutoencoder.from_pretrained(os.path.expanduser(arg))
    else:
        raise ValueError(f"unknown autoencoder spec {spec!r}: use one of {', '.join(SPEC_FORMS)}")
    return ae.to(device)

