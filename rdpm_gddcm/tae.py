"""The TAE ("tiny autoencoder") network family: TAESD, TAESDXL, TAEF1, taef2, ... (DESIGN "Three
swappable parts": the TAE family; ``../shared/weights/taef2/README.md`` for the architecture).

Written from the README's description, not copied: the state-dict keys of the released ``.pth``
files are the indices of an ``nn.Sequential``, so ``TAEEncoder`` / ``TAEDecoder`` *are*
``nn.Sequential`` subclasses whose layer order reproduces those indices exactly (strict loading
is the test of that). Only the latent channel count differs across the family (4 for TAESD,
16 for TAEF1, 32 for taef2); it is read from the weights by ``latent_channels_of``.

Conventions of the released weights (kept here, converted in ``autoencoders.py``):
the encoder takes images in [0, 1]; the decoder returns images roughly in [0, 1] (not clamped);
latents are raw (unscaled), roughly in [-3, 3]; 8x down/upsampling.
"""
from __future__ import annotations

import os

import torch
from torch import nn

WIDTH = 64  # every TAE in the family uses 64 channels inside


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft clamp ``tanh(z/3)*3``: keeps out-of-range latents (e.g. from a generator) from
    blowing up the decoder; ~identity on the typical [-2, 2] range. No weights, but it occupies
    index 0 of the decoder so the released keys start at 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Residual block: ``relu(conv3(x) + x)``; "with pool" first adds a per-pixel MLP with a
    GroupNorm (``x = x + pool(x)``), the only normalisation in the network (mid blocks)."""

    def __init__(self, n: int = WIDTH, with_pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(n, n), nn.ReLU(), _conv(n, n), nn.ReLU(), _conv(n, n))
        self.skip = nn.Identity()  # n_in == n_out everywhere in this family: no weights
        self.fuse = nn.ReLU()
        self.pool = None
        if with_pool:
            self.pool = nn.Sequential(
                nn.Conv2d(n, 4 * n, 1, bias=False), nn.GroupNorm(4, 4 * n), nn.ReLU(),
                nn.Conv2d(4 * n, n, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


class TAEEncoder(nn.Sequential):
    """Images in [0, 1] (B,3,H,W) -> raw latent (B, latent_channels, H/8, W/8)."""

    downsample = 8

    def __init__(self, latent_channels: int = 32):
        w = WIDTH
        super().__init__(
            _conv(3, w), Block(w),                                                      # 0-1
            _conv(w, w, stride=2, bias=False), Block(w), Block(w), Block(w),            # 2-5
            _conv(w, w, stride=2, bias=False), Block(w), Block(w), Block(w),            # 6-9
            _conv(w, w, stride=2, bias=False),                                          # 10
            Block(w, True), Block(w, True), Block(w, True),                             # 11-13
            _conv(w, latent_channels),                                                  # 14
        )
        self.latent_channels = latent_channels


class TAEDecoder(nn.Sequential):
    """Raw latent (B, latent_channels, h, w) -> images roughly in [0, 1] (B,3,8h,8w)."""

    upsample = 8

    def __init__(self, latent_channels: int = 32):
        w = WIDTH
        up = lambda: nn.Upsample(scale_factor=2)  # noqa: E731  (nearest, as released)
        super().__init__(
            Clamp(), _conv(latent_channels, w), nn.ReLU(),                              # 0-2
            Block(w, True), Block(w, True), Block(w, True),                             # 3-5
            up(), _conv(w, w, bias=False), Block(w), Block(w), Block(w),                # 6-10
            up(), _conv(w, w, bias=False), Block(w), Block(w), Block(w),                # 11-15
            up(), _conv(w, w, bias=False), Block(w),                                    # 16-18
            _conv(w, 3),                                                                # 19
        )
        self.latent_channels = latent_channels


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A released ``.pth`` (fp16) as a float32 state dict; ``weights_only=True`` because a
    pickled checkpoint can run code (DESIGN "Weights")."""
    sd = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path} is not a TAE state dict (expected a dict of tensors)")
    return {k: v.float() for k, v in sd.items()}


def latent_channels_of(encoder_sd: dict[str, torch.Tensor]) -> int:
    """Latent channels = output channels of the encoder's last conv (the highest index)."""
    last = max(int(k.split(".")[0]) for k in encoder_sd if k.split(".")[0].isdigit())
    return int(encoder_sd[f"{last}.weight"].shape[0])


def build_tae(encoder_sd: dict | None = None, decoder_sd: dict | None = None,
              latent_channels: int = 32) -> tuple[TAEEncoder, TAEDecoder]:
    """Encoder and decoder, strictly loaded from the given state dicts (random init if None).
    Strict loading means any architecture/key mismatch fails loudly here, not as bad images."""
    if encoder_sd is not None:
        latent_channels = latent_channels_of(encoder_sd)
    elif decoder_sd is not None and "1.weight" in decoder_sd:
        latent_channels = int(decoder_sd["1.weight"].shape[1])  # input of the decoder's conv
    enc, dec = TAEEncoder(latent_channels), TAEDecoder(latent_channels)
    if encoder_sd is not None:
        enc.load_state_dict(encoder_sd, strict=True)
    if decoder_sd is not None:
        dec.load_state_dict(decoder_sd, strict=True)
    return enc, dec
