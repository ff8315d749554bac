"""The RDPM-style generator over gDDCM token maps (SPEC §9) and its chooser.

Markov property: with fixed seeds, the chain state before step n determines everything after
it, so p(Z_n | Z_<n, y) = p(Z_n | state_{n-1}, n, y). The model is a DiT-style transformer over
the tokenizer's block grid (one position per block) whose input is the patchified state before
step n and the backbone's x̂0 at step n — both free at sampling time because the chain computes
them — conditioned by adaLN on the token row m and the class y (null class = num_classes).

Token rows: m = 0 is the init token map when the tokenizer uses ``init=codebook`` (predicted
from a zero state and zero x̂0), and m = n + has_init is chain step n.

Head (SPEC §9): tied to the codebook. The model predicts a vector u_b per block and scores the
entries with the tokenizer's own selection rule (SPEC §4), u_b standing in for the unknown target:
``l2`` tokens: ``logit_k = κ·(⟨u_b, C_m[k]_b⟩ - ½‖C_m[k]_b‖²)`` (with u_b = c* its argmax is the
encoder's choice); ``dot`` tokens: ``logit_k = κ·⟨u_b, C_m[k]_b⟩`` (with u_b = x - x̂0 likewise).
κ > 0 is learned. An untied linear head over K is the ablation.

Rank-r quadratic term (``head_rank`` = r > 0, our extension of SPEC §9). The encoder's pick is the
argmax over k of ⟨r_b, C[k]_b⟩ for the unknown residual r_b; if the model believes r_b ~ N(μ_b, Σ_b),
the softened pick has E_r exp(κ⟨r_b, C⟩) = exp(κ⟨μ_b, C⟩ + ½κ²·CᵀΣ_bC): a linear term alone can only
say where the residual's *mean* points, and its samples pull every block towards that mean (blur),
while a late-step residual has mean ≈ 0 and a very non-isotropic covariance. So the model also
predicts r vectors v_bj per block and adds ``½·Σ_j ⟨v_bj, C[k]_b⟩² / Db`` (Σ_b ∝ Σ_j v_bj v_bjᵀ, PSD).
With the v's zero it is the plain tied head.

Isotropic term (``head_isotropic``, ours): the isotropic part of that covariance, Σ_b = s_b·I + Σ_j v_bj v_bjᵀ,
adds ``½·s_b·‖C[k]_b‖² / Db`` with a scalar s_b predicted per block (its layer starts at zero: the same
function as without it). ``dot`` tokens are argmaxes of ⟨r_b, C⟩, so they favour *long* entries whatever
the direction of r_b; where r_b is nearly unpredictable (the late maps) that preference is most of what can
be known, and a rank-r term spans too few directions to express it.

Minimum-norm maps (``min_norm_maps`` = M, a sampling setting, ours): the last M token maps take each
block's shortest codebook entry instead of a sampled token. A chain step adds ``noise_scale·C[k]``
(Eq. 22); a data token is long *and* aligned with the image's residual, while a token drawn from a
near-uniform prediction is a random direction, i.e. noise. Where the generator cannot predict the
residual, the shortest entry adds the least of that noise: a deterministic, lower-noise end of the
chain, as DDIM's η < 1 is of an ancestral sampler. Those maps need no transformer call. M = 0 is SPEC §9.

Norm bias (``norm_bias`` = β, a sampling setting, ours): the soft form of the same idea on the sampled
chain-step maps: every entry's (CFG) logit gets ``-β·½‖C_m[k]_b‖²`` before top-k/top-p and the temperature,
so with β > 0 among entries the generator finds about equally likely the shorter ones, which add less noise,
win more often (β → ∞: the minimum-norm entry); β < 0 favours the longer ones, as ``dot`` data tokens are.
The init map (row 0 with ``init=codebook``) is the chain's starting noise, whose norm the first step's σ
assumes: it is never biased. β = 0 is SPEC §9.

Token history (``history_maps`` = H > 0, ours): the input of block b at row m also gets the codebook
vectors the previous H maps chose there, C_{m-k}[z_{m-k,b}]_b for k = 1..H (zeros where m-k < 0), through
a zero-initialised linear layer. The state already holds their sum, scaled and mixed with every other
block's through the backbone, so the Markov property makes this redundant for an ideal model; a small
one reads which direction each block took far more easily from the vectors themselves. Training reads
the history from the shards' tokens (teacher forcing), sampling from the chain's earlier choices
(``StepContext.earlier``). It lowers the cross-entropy but, trained this way, not the FID (README, Token
history): off by default. H = 0 is SPEC §9.

Two-pass maps (``two_pass``, ours; MaskGIT's iterative decoding cut to two fixed passes): SPEC §9 draws the
blocks of a token map independently given the state, but a data map's blocks are not independent of each
other (README, Diagnostics: tokens each from another image score far worse than a whole map from another
image). A two-pass generator draws every block, keeps one checkerboard half (parity m mod 2 at row m), and
draws the other half again given the kept half's codebook vectors C_m[z_b]_b and a known-flag per block,
through a zero-initialised linear layer (a generator without it loads as the same function). Training
shows each example either nothing (the first pass) or a random checkerboard half of its true map (the
second), with the loss on the blocks not shown. Off: the same model as SPEC §9.

Masked passes (``map_passes`` = P > 1, ours; MaskGIT's iterative decoding, Chang et al. 2022, §3.2, inside
each token map): the same known-blocks input, but the kept blocks are the most confident ones and their
number grows over P passes. Pass 1 draws every block; after pass s < P the ``kept_after(s, P, G)`` =
⌈G·(1 - cos(π/2·s/P))⌉ blocks whose drawn token has the highest probability under the (CFG) logits are
kept (blocks kept earlier stay kept), and the next pass redraws the others given the kept ones. Training
shows each example nothing with probability 1/P (a first pass), else a uniformly random subset of
⌈G·(1 - cos(π/2·u))⌉ of its true map's blocks, u ~ U(0, 1) (MaskGIT's cosine schedule), with the loss
on the blocks not shown. The number of passes is also a sampling setting (``--map-passes``); 1 pass is
the SPEC §9 generator's sampling.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
from timm.models.vision_transformer import Attention, Mlp

from .guidance import cfg_scale_at, guided


@dataclass
class GeneratorConfig:
    num_blocks: int = 16          # G = gh·gw
    block_dim: int = 192          # Db = C·bh·bw
    num_rows: int = 11            # R token maps per image (N steps + init)
    codebook_size: int = 1024     # K
    num_classes: int = 10
    hidden: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    head: str = "tied"            # "tied" | "untied"
    head_rank: int = 0            # tied head: rank of the per-block quadratic (covariance) term, 0 = linear only
    score: str = "l2"             # tied head's rule, = the tokens' selection: "l2" | "dot" (SPEC §4)
    head_isotropic: bool = False  # tied head: the isotropic covariance term ½·s_b·‖C_b‖²/Db (module docstring)
    history_maps: int = 0         # H: the previous H maps' chosen codebook vectors per block as input (module docstring)
    two_pass: bool = False        # draw each map in two checkerboard passes, the second given the first (module docstring)
    map_passes: int = 1           # P > 1: trained to draw each map in P masked passes (module docstring)
    dropout: float = 0.0

    def to_json(self):
        return asdict(self)

    @property
    def known_input(self) -> bool:
        """Whether the model reads the known blocks of the map it draws (two-pass or masked passes)."""
        return self.two_pass or self.map_passes > 1


# DiT-table style sizes (parameters for a 16-block, Db=192, K=1024 tied setting)
GENERATOR_CONFIGS = {
    "gen-tiny": dict(hidden=64, depth=2, heads=2),          # tests
    "gen-mini": dict(hidden=128, depth=4, heads=4),         # ~1M: the shipped CPU-budget CIFAR-10 generator
    "gen-xs": dict(hidden=256, depth=6, heads=4),           # ~5M: CPU CIFAR-10
    "gen-s": dict(hidden=384, depth=12, heads=6),           # ~30M (DiT-S width/depth)
    "gen-b": dict(hidden=768, depth=12, heads=12),          # ~130M (DiT-B)
    "gen-l": dict(hidden=1024, depth=24, heads=16),         # ~450M (DiT-L)
}


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    """Pre-LN transformer block with adaLN-Zero conditioning (DiT)."""

    def __init__(self, d: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, num_heads=heads, qkv_bias=True, proj_drop=dropout)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(d, int(d * mlp_ratio), act_layer=lambda: nn.GELU(approximate="tanh"), drop=dropout)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))


class TokenGenerator(nn.Module):
    """``forward(state_blocks, xh_blocks, row, y) -> head features`` and
    ``head_logits(features, codebook_blocks) -> logits (B, G, K)``.

    state_blocks, xh_blocks: (B, G, Db); row: (B,) long; y: (B,) long (num_classes = null);
    history: (B, G, H·Db) from ``token_history`` when ``history_maps`` = H > 0 (None: no history, zeros);
    known: (B, G, Db + 1) from ``known_blocks`` when ``cfg.known_input`` (None: nothing known yet, the first pass).
    Features are u (B, G, Db) for the tied head, logits (B, G, K) for the untied one;
    codebook_blocks: (K, G, Db) is the row's codebook restricted to each block (tied head only).
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.inp = nn.Linear(2 * cfg.block_dim, d)
        if cfg.history_maps < 0:
            raise ValueError(f"history_maps {cfg.history_maps} must be >= 0")
        if cfg.history_maps:            # zero-initialised: a model without it loads as the same function
            self.hist = nn.Linear(cfg.history_maps * cfg.block_dim, d)
            nn.init.zeros_(self.hist.weight)
            nn.init.zeros_(self.hist.bias)
        if cfg.map_passes < 1 or (cfg.two_pass and cfg.map_passes > 1):
            raise ValueError(f"map_passes {cfg.map_passes} must be >= 1, and 1 with two_pass")
        if cfg.known_input:             # zero-initialised likewise
            self.known = nn.Linear(cfg.block_dim + 1, d)
            nn.init.zeros_(self.known.weight)
            nn.init.zeros_(self.known.bias)
        self.pos = nn.Parameter(torch.zeros(1, cfg.num_blocks, d))
        nn.init.normal_(self.pos, std=0.02)
        self.row_emb = nn.Embedding(cfg.num_rows, d)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, d)
        self.blocks = nn.ModuleList([DiTBlock(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth)])
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        nn.init.zeros_(self.ada_out[1].weight)
        nn.init.zeros_(self.ada_out[1].bias)
        if cfg.head_rank < 0 or (cfg.head_rank and cfg.head != "tied"):
            raise ValueError(f"head_rank {cfg.head_rank} needs a tied head and must be >= 0")
        if cfg.head_isotropic and cfg.head != "tied":
            raise ValueError("head_isotropic needs a tied head")
        if cfg.head == "tied":
            # u (Db) then the quadratic term's r vectors (r·Db); their default init is deliberately
            # nonzero: at v = 0 the gradient of ⟨v, C⟩² vanishes and the term would never start
            self.out = nn.Linear(d, cfg.block_dim * (1 + cfg.head_rank))
            # κ = 1/√Db at init: ‖C_k‖² of a Gaussian entry varies by ~√(2·Db) across k, so this keeps
            # the initial logits O(1) instead of starting with a huge, arbitrary preference
            self.log_kappa = nn.Parameter(torch.tensor(-0.5 * float(torch.log(torch.tensor(float(cfg.block_dim))))))
            if cfg.head_isotropic:      # s_b; zero-initialised so a checkpoint without it loads as the same function
                self.iso = nn.Linear(d, 1)
                nn.init.zeros_(self.iso.weight)
                nn.init.zeros_(self.iso.bias)
            if cfg.score not in ("l2", "dot"):
                raise ValueError(f"unknown tied-head score {cfg.score!r}; use the tokens' selection, l2 or dot")
        elif cfg.head == "untied":
            self.out = nn.Linear(d, cfg.codebook_size)
        else:
            raise ValueError(f"unknown head {cfg.head!r}; use tied or untied")

    def forward(self, state_blocks, xh_blocks, row, y, history=None, known=None):
        h = self.inp(torch.cat([state_blocks, xh_blocks], dim=-1)) + self.pos
        if self.cfg.history_maps:              # None: no earlier maps (the first row), the same as zeros
            h = h + (self.hist(history) if history is not None else self.hist.bias)
        elif history is not None:
            raise ValueError("a token history was given to a generator without history_maps")
        if self.cfg.known_input:               # None: the first pass, the same as zeros
            h = h + (self.known(known) if known is not None else self.known.bias)
        elif known is not None:
            raise ValueError("known blocks were given to a generator trained without them (two_pass, map_passes)")
        c = self.row_emb(row) + self.class_emb(y)
        for blk in self.blocks:
            h = blk(h, c)
        sh, sc = self.ada_out(c).chunk(2, dim=-1)
        h = modulate(self.norm_out(h), sh, sc)
        if self.cfg.head_isotropic:                # features = [u, v_1..v_r, s]
            return torch.cat([self.out(h), self.iso(h)], dim=-1)
        return self.out(h)

    def resolve_precision(self, requested: str, device, batch: int = 64, train: bool = False):
        """``precision.resolve_precision`` for this model; the CPU timing probe is one forward
        (+ backward when ``train``) of a ``batch`` through the body and head (64: a CFG batch of 32)."""
        from .precision import resolve_precision
        cfg = self.cfg

        z = torch.zeros(batch, cfg.num_blocks, cfg.block_dim, device=device)
        row = torch.zeros(batch, dtype=torch.long, device=device)
        cb = torch.randn(cfg.codebook_size, cfg.num_blocks, cfg.block_dim, device=device) \
            if cfg.head == "tied" else None

        def probe(dtype):
            with torch.set_grad_enabled(train), torch.autocast(torch.device(device).type, dtype=dtype or torch.float32,
                                                               enabled=dtype is not None):
                hist = z.new_zeros(batch, cfg.num_blocks, cfg.history_maps * cfg.block_dim) \
                    if cfg.history_maps else None       # the layer's real cost, not its bias-only shortcut
                known = z.new_zeros(batch, cfg.num_blocks, cfg.block_dim + 1) if cfg.known_input else None
                out = self.head_logits(self(z, z, row, row, hist, known), cb)
            if train:
                out.float().mean().backward()
                self.zero_grad(set_to_none=True)

        key = f"generator:{'train' if train else 'infer'}:{json.dumps(asdict(cfg), sort_keys=True)}:{batch}"
        return resolve_precision(requested, device, probe, key)

    def head_logits(self, features: torch.Tensor, codebook_blocks: torch.Tensor | None) -> torch.Tensor:
        if self.cfg.head == "untied":
            return features.float()
        f = features.float()
        Db, r = self.cfg.block_dim, self.cfg.head_rank
        v = f[..., Db:Db * (1 + r)].unflatten(-1, (r, Db)) if r else None
        s = f[..., -1] if self.cfg.head_isotropic else None
        return tied_logits(f[..., :Db], codebook_blocks, self.log_kappa.exp(), self.cfg.score, v, s)


def tied_logits(u: torch.Tensor, codebook_blocks: torch.Tensor, kappa, score: str = "l2",
                v: torch.Tensor | None = None, s: torch.Tensor | None = None) -> torch.Tensor:
    """For u (B, G, Db) and codebook_blocks (K, G, Db) -> (B, G, K), fp32: ``l2``: κ·(⟨u_b, C[k]_b⟩ -
    ½‖C[k]_b‖²) (= -κ/2·‖u_b - C[k]_b‖² up to a per-block constant); ``dot``: κ·⟨u_b, C[k]_b⟩.
    With v (B, G, r, Db), plus the covariance term ½·Σ_j ⟨v_bj, C[k]_b⟩² / Db; with s (B, G), plus the
    isotropic term ½·s_b·‖C[k]_b‖² / Db (module docstring)."""
    C = codebook_blocks.float()
    B, G, D = u.shape
    K = C.shape[0]
    r = 0 if v is None else v.shape[2]
    # one batched matmul per block for u and the v's: (G, B·(1+r), D) @ (G, D, K)
    w = u.float().unsqueeze(2) if not r else torch.cat([u.float().unsqueeze(2), v.float()], 2)
    proj = torch.bmm(w.permute(1, 0, 2, 3).reshape(G, B * (1 + r), D), C.permute(1, 2, 0)).view(G, B, 1 + r, K)
    logits = kappa * proj[:, :, 0]
    if score != "dot":
        logits = logits - kappa * 0.5 * (C * C).sum(-1).T.unsqueeze(1)
    if r:
        logits = logits + proj[:, :, 1:].square().sum(2) * (0.5 / D)
    if s is not None:                                      # (G, B, 1) · (G, 1, K)
        logits = logits + s.float().T.unsqueeze(-1) * (C * C).sum(-1).T.unsqueeze(1) * (0.5 / D)
    return logits.permute(1, 0, 2)


def token_history(spec, tokens: torch.Tensor, rows: torch.Tensor, maps: int) -> torch.Tensor:
    """The generator's history input (module docstring): for each example i at token row rows[i], the
    codebook vectors its previous ``maps`` rows chose per block, C_{r-k}[tokens[i, r-k, b]]_b for
    k = 1..maps, concatenated over k -> (B, G, maps·Db) float32 (zeros where r-k < 0). ``tokens``
    (B, R', G) holds at least the rows before each rows[i]; ``spec`` is the tokens' ChainSpec."""
    tokens, rows = tokens.long(), rows.long().to(tokens.device)
    B, _, G = tokens.shape
    Db = spec.grid.block_dim
    out = torch.zeros(B, G, maps * Db, device=tokens.device)
    blocks = torch.arange(G, device=tokens.device)
    for k in range(1, maps + 1):
        prev = rows - k
        for r in prev[prev >= 0].unique().tolist():
            sel = (prev == r).nonzero().squeeze(1)
            cb = spec.codebook_blocks(r, tokens.device)                           # (K, G, Db)
            out[sel, :, (k - 1) * Db:k * Db] = cb[tokens[sel, r], blocks]
    return out


def checkerboard(grid, parity: int, device=None) -> torch.Tensor:
    """(G,) bool: the blocks of ``grid`` (row-major over gh x gw, as ``Grid.to_blocks``) with (i + j) % 2 ==
    parity: the half a two-pass map keeps from its first pass (module docstring)."""
    i = torch.arange(grid.gh, device=device)[:, None]
    j = torch.arange(grid.gw, device=device)[None, :]
    return ((i + j) % 2 == parity % 2).flatten()


def kept_after(s: int, passes: int, num_blocks: int) -> int:
    """Masked passes (module docstring): how many of a map's ``num_blocks`` blocks are kept after pass s of
    ``passes``, ⌈G·(1 - cos(π/2·s/P))⌉, at least 1 and at most G - 1 for 0 < s < P."""
    return min(num_blocks - 1, max(1, math.ceil(num_blocks * (1 - math.cos(math.pi / 2 * s / passes)) - 1e-9)))


def known_blocks(codebook_blocks: torch.Tensor, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The second pass's input (module docstring): for tokens (B, G) of one map, codebook_blocks (K, G, Db)
    of its row and known (B, G) bool, [C[tokens_b]_b, 1] where known and zeros elsewhere -> (B, G, Db + 1)."""
    G = tokens.shape[1]
    vec = codebook_blocks.float()[tokens.long(), torch.arange(G, device=tokens.device)]    # (B, G, Db)
    k = known.to(vec.dtype).unsqueeze(-1)
    return torch.cat([vec * k, k], dim=-1)


# ------------------------------------------------------------------------------------------ sampling
def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask logits outside the top-k / nucleus top-p set with -inf (per block)."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_l, order = logits.sort(dim=-1, descending=True)
        probs = sorted_l.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p          # keep the smallest set reaching top_p
        sorted_l = sorted_l.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_l)
    return logits


def min_norm_entries(codebook_blocks: torch.Tensor) -> torch.Tensor:
    """(K, G, Db) -> (1, G): each block's shortest codebook entry (the minimum-norm maps' token)."""
    return codebook_blocks.float().square().sum(-1).argmin(0).unsqueeze(0)


def resolve_map_passes(cfg: GeneratorConfig, map_passes: int | None) -> int:
    """The passes per map a sampler draws (module docstring: masked passes): ``map_passes``, where None or 0
    is the number the generator was trained for; more than one needs a generator trained with them."""
    if not map_passes:
        return cfg.map_passes
    if map_passes != cfg.map_passes and (map_passes < 1 or cfg.map_passes == 1):
        raise ValueError(f"map_passes {map_passes}: this generator was trained for {cfg.map_passes} pass(es) per map"
                         + (" (two-pass)" if cfg.two_pass else "")
                         + "; more than one needs a generator trained with rdpm-train --map-passes (0 = its own)")
    return map_passes


class ModelChooser:
    """The chain's chooser for RDPM sampling (SPEC §9): CFG on logits l = l_u + w·(l_c - l_u),
    then Gumbel-max argmax(l/τ + G) with image i's noise from its own generator (τ = 0: greedy).
    ``w = 1`` is no guidance (DiT/diffusers convention; VAR's (1+w') corresponds to w = 1 + w').
    A generator with ``history_maps`` is fed the indices chosen at the chain's earlier rows (``ctx.earlier``,
    whoever chose them), in both CFG branches: the history is the image's, not the class's. A ``two_pass``
    generator draws each map twice, a ``map_passes`` one in ``map_passes`` masked passes (module docstring;
    None: the number it was trained for); the kept blocks are the image's too, in both branches. With an
    ``init_prior`` (init_prior.py) the init map is that prior's, drawn from each image's generator first."""

    def __init__(self, model: TokenGenerator, labels: torch.Tensor, generators: list, cfg_scale: float = 1.0,
                 cfg_schedule: str = "constant", temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 autocast_dtype=None, min_norm_maps: int = 0, map_passes: int | None = None, norm_bias: float = 0.0,
                 init_prior=None, init_prior_guidance: float = 1.0, init_prior_scale: float = 1.0):
        if not 0 <= min_norm_maps <= model.cfg.num_rows:
            raise ValueError(f"min_norm_maps {min_norm_maps} outside [0, {model.cfg.num_rows}] (the token maps)")
        if not math.isfinite(norm_bias):
            raise ValueError(f"norm_bias {norm_bias}: must be a finite number (0 = off)")
        self.map_passes = resolve_map_passes(model.cfg, map_passes)
        self.model, self.labels, self.generators = model, labels.long(), generators
        self.cfg_scale, self.cfg_schedule = cfg_scale, cfg_schedule
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.min_norm_maps, self.norm_bias = min_norm_maps, norm_bias
        self.init_prior, self.init_prior_guidance, self.init_prior_scale = init_prior, init_prior_guidance, init_prior_scale
        self.autocast_dtype = autocast_dtype
        self.time_in_model = 0.0
        self._device_generators: list | None = None

    @torch.no_grad()
    def logits(self, ctx, known: torch.Tensor | None = None) -> torch.Tensor:
        """CFG-combined logits (B, G, K) at the chain's row; ``known`` (B, G, Db + 1): a two-pass
        generator's second pass (``known_blocks``)."""
        import time
        t0 = time.time()
        grid = ctx.grid
        state = grid.to_blocks(ctx.state.float())
        xh = torch.zeros_like(state) if ctx.xh is None else grid.to_blocks(ctx.xh.float())
        B, dev = state.shape[0], state.device
        m = ctx.spec.row_of_step(ctx.n)
        row = torch.full((B,), m, dtype=torch.long, device=dev)
        cb = ctx.spec.codebook_blocks(m, dev) if self.model.cfg.head == "tied" else None
        w = cfg_scale_at(m, self.model.cfg.num_rows, self.cfg_scale, self.cfg_schedule)
        y = self.labels.to(dev)
        H = self.model.cfg.history_maps
        extra = {}                                          # the optional inputs given, as (B, ...) tensors
        if H and m:
            if len(ctx.earlier) != m:
                raise ValueError(f"the generator reads the token history but the chain gave {len(ctx.earlier)} earlier "
                                 f"token maps at row {m}: run it through run_chain from row 0")
            extra["history"] = token_history(ctx.spec, torch.stack(ctx.earlier, 1).to(dev), row, H)
        if known is not None:
            extra["known"] = known.to(dev)
        names = list(extra)
        with torch.autocast(dev.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            def logits_of(s, x, r, *rest):                 # rest = (the extra inputs..., labels)
                *vals, labels = rest
                kw = dict(zip(names, vals))
                return self.model.head_logits(self.model(s, x, r, labels, kw.get("history"), kw.get("known")), cb)
            inputs = (state, xh, row, *extra.values())
            out = logits_of(*inputs, y) if w == 1.0 else guided(logits_of, inputs, y, self.model.cfg.num_classes, w)
        out = out.float()
        if self.norm_bias and ctx.n >= 0:                  # module docstring: norm bias (never the init map)
            entries = ctx.spec.codebook_blocks(m, dev) if cb is None else cb          # (K, G, Db)
            out = out - self.norm_bias * 0.5 * entries.float().square().sum(-1).T
        self.time_in_model += time.time() - t0
        return out

    def choose(self, ctx) -> torch.Tensor:
        if self.init_prior is not None and ctx.n < 0:              # init_prior.py: the init map drawn jointly
            from .init_prior import init_tokens
            return init_tokens(ctx, self.init_prior.sample(self.labels, self.generators, self.init_prior_guidance,
                                                           self.init_prior_scale))
        if self.min_norm_maps:                                     # module docstring: minimum-norm maps
            m = ctx.spec.row_of_step(ctx.n)
            if m >= self.model.cfg.num_rows - self.min_norm_maps:
                shortest = min_norm_entries(ctx.spec.codebook_blocks(m, ctx.state.device))
                return shortest.expand(ctx.state.shape[0], -1)
        logits = self.logits(ctx)
        first = self.draw(logits)
        if self.model.cfg.two_pass:
            m = ctx.spec.row_of_step(ctx.n)
            keep = checkerboard(ctx.grid, m, first.device).expand_as(first)
            known = known_blocks(ctx.spec.codebook_blocks(m, first.device), first, keep)
            return torch.where(keep, first, self.draw(self.logits(ctx, known)))
        return self.masked_passes(ctx, ctx.spec.row_of_step(ctx.n), first, logits) if self.map_passes > 1 else first

    def masked_passes(self, ctx, m: int, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Passes 2..P of a map (module docstring: masked passes), from pass 1's ``tokens`` and ``logits``."""
        cb = ctx.spec.codebook_blocks(m, tokens.device)
        confidence = lambda lg, tk: lg.log_softmax(-1).gather(-1, tk.unsqueeze(-1)).squeeze(-1)  # noqa: E731
        conf = confidence(logits, tokens)
        keep = torch.zeros_like(tokens, dtype=torch.bool)
        for s in range(1, self.map_passes):
            n = kept_after(s, self.map_passes, tokens.shape[1])
            best = conf.masked_fill(keep, float("inf")).topk(n, dim=1).indices    # the kept ones stay kept
            keep = torch.zeros_like(keep).scatter_(1, best, True)
            logits = self.logits(ctx, known_blocks(cb, tokens, keep))
            drawn = self.draw(logits)
            tokens = torch.where(keep, tokens, drawn)
            conf = torch.where(keep, conf, confidence(logits, drawn))
        return tokens

    def draw(self, logits: torch.Tensor) -> torch.Tensor:
        """Top-k/top-p, then Gumbel-max at temperature τ (τ = 0: argmax): logits (B, G, K) -> tokens (B, G)."""
        logits = filter_logits(logits, self.top_k, self.top_p)
        if self.temperature <= 0:
            return logits.argmax(-1)
        G, K = logits.shape[1:]
        u = torch.stack([torch.rand(G, K, generator=g, device=g.device) for g in self.gumbel_generators(logits.device)])
        neg_log_u = (-torch.log(u.clamp(1e-20, 1.0))).clamp_min(1e-20)      # in (0, 46]
        gumbel = -torch.log(neg_log_u)
        return (logits / self.temperature + gumbel).argmax(-1)

    def gumbel_generators(self, device: torch.device) -> list:
        """Where the Gumbel noise is drawn: on CPU the images' own generators; on an accelerator one
        generator per image *on that device*, seeded once from the image's own generator (a CPU draw
        of G·K uniforms per image and step costs ~170 ms/image at ImageNet 16x16, K=4096). Either way
        image i's noise depends only on (seed, i); a GPU run's images differ from a CPU run's."""
        if device.type == "cpu":
            return self.generators
        if self._device_generators is None:
            self._device_generators = [torch.Generator(device=device).manual_seed(
                int(torch.randint(0, 2 ** 62, (1,), generator=g))) for g in self.generators]
        return self._device_generators

    init = choose
    step = choose


def save_generator(model: TokenGenerator, directory, meta: dict, dtype=torch.float16):
    """generator.safetensors (weights in ``dtype``) + generator.json (``meta`` with the config), each
    written atomically; ``load_generator`` reads them back."""
    from safetensors.torch import save_file

    from .files import atomic_path, write_json_atomic
    d = Path(directory)
    with atomic_path(d / "generator.safetensors") as tmp:
        save_file({k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json_atomic(d / "generator.json", {"format_version": 1, "generator": model.cfg.to_json(), **meta})


def load_generator(path, device="cpu") -> tuple[TokenGenerator, dict]:
    """A generator from a run dir / dir with generator.json, or a .safetensors with its .json beside it."""
    from safetensors.torch import load_file
    p = Path(path)
    if p.is_dir():
        w, j = p / "generator.safetensors", p / "generator.json"
    else:
        w, j = p, p.with_suffix(".json")
    if not w.exists() or not j.exists():
        raise FileNotFoundError(f"no generator at {path}: expected generator.safetensors + generator.json "
                                "(written by rdpm-train); pass --ckpt RUN_DIR")
    meta = json.loads(j.read_text())
    model = TokenGenerator(GeneratorConfig(**meta["generator"]))
    model.load_state_dict({k: v.float() for k, v in load_file(str(w)).items()})
    return model.eval().requires_grad_(False).to(device), meta


def build_generator(name: str, **fields) -> TokenGenerator:
    if name not in GENERATOR_CONFIGS:
        raise ValueError(f"unknown generator size {name!r}; choose one of {', '.join(GENERATOR_CONFIGS)}")
    return TokenGenerator(GeneratorConfig(**{**GENERATOR_CONFIGS[name], **fields}))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

