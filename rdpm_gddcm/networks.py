"""The project's own trainable denoising network: a compact class-conditional U-Net.

ADM/DDPM++-style: residual blocks with adaptive group norm (scale/shift from the noise and class
embedding), self-attention at low resolutions, skip connections. The class embedding has one
extra row, the null class (index ``num_classes``), used for classifier-free guidance.

What the network predicts (ε, EDM's F, or a flow velocity) and how its input is preconditioned
is decided by ``backbones.NetworkBackbone`` per family (SPEC §1), not here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    in_channels: int = 3
    image_size: int = 32
    base_channels: int = 64
    channel_mult: tuple = (1, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple = (8,)
    dropout: float = 0.1
    num_classes: int = 10          # 0 = unconditional
    num_heads: int = 4

    def to_json(self) -> dict:
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        d["attn_resolutions"] = list(self.attn_resolutions)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["channel_mult"] = tuple(d["channel_mult"])
        d["attn_resolutions"] = tuple(d["attn_resolutions"])
        return cls(**d)


# Model sizes, DiT-table style. Pixel 32x32 CIFAR models and 8x8 latent models.
UNET_CONFIGS = {
    "unet-tiny": dict(base_channels=32, channel_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0),
    "unet-cpu": dict(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(8,), dropout=0.1),
    "unet-cpu-w": dict(base_channels=48, channel_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.1),
    "unet-s": dict(base_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(8,)),
    "unet-b": dict(base_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,)),
    "unet-latent-cpu": dict(base_channels=64, channel_mult=(1, 2), num_res_blocks=2, attn_resolutions=(4,), dropout=0.1),
    "unet-latent-s": dict(base_channels=128, channel_mult=(1, 2), num_res_blocks=2, attn_resolutions=(8, 4)),
}


def timestep_embedding(c_noise: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of a (B,) float tensor (DDPM/ADM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=c_noise.device, dtype=torch.float32) / half)
    args = c_noise.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def group_norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= 32 that divides ``ch`` (at least 4 channels a group)."""
    groups = max(g for g in range(1, 33) if ch % g == 0 and ch // g >= min(4, ch))
    return nn.GroupNorm(groups, ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)          # adaptive GN: scale and shift
        self.norm2 = group_norm(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    def __init__(self, ch: int, num_heads: int):
        super().__init__()
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.num_heads = num_heads

    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """``forward(x, c_noise, y) -> output`` with x (B,C,H,W), c_noise (B,) float, y (B,) long
    (``num_classes`` = null class)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes > 0 else None
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        chans = [ch]
        cur, res = ch, cfg.image_size
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                blocks = [ResBlock(cur, ch * mult, emb_dim, cfg.dropout)]
                cur = ch * mult
                if res in cfg.attn_resolutions:
                    blocks.append(AttnBlock(cur, cfg.num_heads))
                self.down.append(nn.ModuleList(blocks))
                chans.append(cur)
            if level != len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(cur, cur, 3, stride=2, padding=1)]))
                chans.append(cur)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, emb_dim, cfg.dropout), AttnBlock(cur, cfg.num_heads),
                                  ResBlock(cur, cur, emb_dim, cfg.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                blocks = [ResBlock(cur + chans.pop(), ch * mult, emb_dim, cfg.dropout)]
                cur = ch * mult
                if res in cfg.attn_resolutions:
                    blocks.append(AttnBlock(cur, cfg.num_heads))
                if level != 0 and i == cfg.num_res_blocks:
                    blocks.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    blocks.append(nn.Conv2d(cur, cur, 3, padding=1))
                    res *= 2
                self.up.append(nn.ModuleList(blocks))
        self.norm_out = group_norm(cur)
        self.conv_out = nn.Conv2d(cur, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _run(self, blocks, h, emb):
        for b in blocks:
            h = b(h, emb) if isinstance(b, ResBlock) else b(h)
        return h

    def forward(self, x, c_noise, y=None):
        emb = self.time_mlp(timestep_embedding(c_noise, self.cfg.base_channels))
        if self.class_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.cfg.num_classes, device=x.device, dtype=torch.long)
            emb = emb + self.class_emb(y)
        emb = F.silu(emb)
        h = self.conv_in(x)
        hs = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb)
            hs.append(h)
        h = self._run(self.mid, h, emb)
        for blocks in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(blocks, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def build_unet(name_or_cfg, **overrides) -> UNet:
    if isinstance(name_or_cfg, UNetConfig):
        return UNet(name_or_cfg)
    if name_or_cfg not in UNET_CONFIGS:
        raise ValueError(f"unknown model {name_or_cfg!r}; choose one of {', '.join(UNET_CONFIGS)}")
    return UNet(UNetConfig(**{**UNET_CONFIGS[name_or_cfg], **overrides}))
