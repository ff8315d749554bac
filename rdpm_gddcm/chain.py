"""The one gDDCM chain (SPEC §2) and its choosers (SPEC §4, §5).

Encoding, decoding, DDCM-style random generation and RDPM sampling are the same loop::

    state = init(...)                                         # SPEC §5 (may consume a token)
    for n, (t_from, t_den, t_to) in enumerate(plan):
        xh, eh = backbone(state, t_from, label)
        idx    = chooser.step(ctx)                            # the only thing that differs
        c      = grid.assemble(codebook(seed, n), idx)
        state  = s(t_to)·xh + S(t_den)·eh + √(S(t_to)² - S(t_den)²)·c     # gDDCM Eq. 22
    x_rec = ode_solve(state, plan.final_times)                # deterministic final sampler

A chooser has two methods, ``init(ctx)`` and ``step(ctx)``, each returning indices ``(B, G)``.
``run_chain`` is the only place the state update is written; ``ode_solve`` (the final sampler,
also each backbone's own ODE sampler) is its p = 1 special case without a codebook.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .codebooks import GAUSSIAN_INIT_STEP, INIT_STEP, Grid, VirtualCodebook
from .plans import Plan, StepCoefficients, ode_times

INIT_KINDS = ("codebook", "gaussian", "zeros")
SELECTIONS = ("dot", "l2", "jacobian")


@dataclass
class ChainSpec:
    """Everything the loop needs besides the backbone and the chooser."""

    plan: Plan
    codebook: VirtualCodebook
    grid: Grid
    codebook_size: int
    init: str = "codebook"
    # entries larger than this many bytes are scored chunk by chunk (bounded memory, SPEC §6)
    max_codebook_bytes: int = 1 << 28
    # per-row codebooks in block layout kept for the generator (training needs every row each step)
    max_block_cache_bytes: int = 1 << 30

    def __post_init__(self):
        self._norms: dict = {}
        self._norm_bytes = 0
        self._blocks: dict = {}
        self._block_bytes = 0
        if self.init not in INIT_KINDS:
            raise ValueError(f"unknown init {self.init!r}; choose one of {', '.join(INIT_KINDS)}")

    @property
    def has_init_token(self) -> bool:
        return self.init == "codebook"

    @property
    def num_token_rows(self) -> int:
        """Token maps per image: N steps plus one init map for ``init=codebook``."""
        return len(self.plan) + int(self.has_init_token)

    # token rows <-> chain steps: row 0 is the init map when there is one (SPEC §8)
    def row_of_step(self, n: int) -> int:
        if n == INIT_STEP:
            if not self.has_init_token:
                raise ValueError(f"init {self.init!r} has no init token")
            return 0
        return n + int(self.has_init_token)

    def step_of_row(self, row: int) -> int:
        return INIT_STEP if (self.has_init_token and row == 0) else row - int(self.has_init_token)

    def codebook_blocks(self, row: int, device) -> torch.Tensor:
        """Token row ``row``'s K codebook entries in block layout (K, G, Db), float32; kept (up to
        ``max_block_cache_bytes``) because the generator needs them at every step and batch."""
        key = (row, str(device))
        hit = self._blocks.get(key)
        if hit is None:
            hit = self.grid.entries_to_blocks(self.codebook.entries(self.step_of_row(row), self.codebook_size,
                                                                    device)).contiguous()
            if self._block_bytes + hit.numel() * 4 <= self.max_block_cache_bytes:
                self._blocks[key] = hit
                self._block_bytes += hit.numel() * 4
        return hit


@dataclass
class StepContext:
    """What a chooser sees at step ``n`` (``n = -1``: the init token)."""

    n: int
    spec: ChainSpec
    state: torch.Tensor                 # (B, C, H, W) float32, state before this step
    xh: torch.Tensor | None             # backbone x̂0 at this step (None for init)
    eh: torch.Tensor | None
    coef: StepCoefficients | None
    labels: torch.Tensor | None
    backbone: object = None             # the chain's backbone (the jacobian selection calls it)
    earlier: list = field(default_factory=list)   # the indices (B, G) chosen at this chain's earlier rows
    _entries: torch.Tensor | None = None

    @property
    def K(self) -> int:
        return self.spec.codebook_size

    @property
    def grid(self) -> Grid:
        return self.spec.grid

    @property
    def fits_in_memory(self) -> bool:
        return self.K * self.spec.codebook.dim * 4 <= self.spec.max_codebook_bytes

    def entries(self) -> torch.Tensor:
        """This step's K codebook entries (K, D), float32 on the state's device (fetched once)."""
        if self._entries is None:
            self._entries = self.spec.codebook.entries(self.n, self.K, self.state.device)
        return self._entries

    def block_sq_norms(self, offset: int, eb: torch.Tensor) -> torch.Tensor:
        """‖C_g[k]‖² (k, G) of a chunk of block entries; memoised per (step, offset, K, grid) on
        the spec: it is the same for every batch (N·G·K floats, small)."""
        key = (self.n, offset, eb.shape[0], str(self.grid), str(eb.device))
        hit = self.spec._norms.get(key)
        if hit is None:
            hit = (eb * eb).sum(-1)
            if self.spec._norm_bytes + hit.numel() * 4 <= (256 << 20):    # keep what fits, like the codebooks
                self.spec._norms[key] = hit
                self.spec._norm_bytes += hit.numel() * 4
        return hit

    def entry_chunks(self):
        """(offset, entries) chunks covering the K entries (bounded memory)."""
        rows = max(1, self.spec.max_codebook_bytes // (4 * self.spec.codebook.dim))
        if self.fits_in_memory:
            yield 0, self.entries()
        else:
            yield from self.spec.codebook.iter_chunks(self.n, self.K, rows, self.state.device)


# ------------------------------------------------------------------------------------------ choosers
def effective_score(selection: str, plan_kind: str) -> str:
    """The scoring form ("dot" or "l2") an encoder with this selection actually used: ``jacobian``
    is a dot product with a target the decoder never sees, and ``ddcm`` plans always use ``dot``
    (SPEC §3). The generator's tied head mirrors it (SPEC §9)."""
    return "dot" if selection == "jacobian" or plan_kind == "ddcm" else selection


def best_entries(ctx: StepContext, target: torch.Tensor, selection: str) -> torch.Tensor:
    """argmax over the codebook per block (SPEC §4), in fp32, chunked over K when needed.

    ``dot``: argmax_k ⟨C_g[k], target_g⟩.  ``l2``: argmin_k ‖C_g[k] - target_g‖², computed as
    argmax_k 2⟨C_g[k], target_g⟩ - ‖C_g[k]‖²."""
    grid = ctx.grid
    tb = grid.to_blocks(target.float())                               # (B, G, Db)
    best_val, best_idx = None, None
    for off, C in ctx.entry_chunks():
        eb = grid.entries_to_blocks(C.float())                       # (k, G, Db)
        if grid.num_blocks == 1:                                     # 1D: one GEMM on a transposed view
            scores = (tb[:, 0] @ eb[:, 0].T).unsqueeze(1)
        else:
            scores = torch.einsum("bgd,kgd->bgk", tb, eb)
        if selection == "l2":
            scores = 2 * scores - ctx.block_sq_norms(off, eb).T.unsqueeze(0)
        v, i = scores.max(dim=-1)
        i = i + off
        if best_val is None:
            best_val, best_idx = v, i
        else:
            better = v > best_val
            best_val = torch.where(better, v, best_val)
            best_idx = torch.where(better, i, best_idx)
    return best_idx


class EncodeChooser:
    """Residual argmax (SPEC §4 / gDDCM Eq. 14), init by Eq. 15. Holds the target latent x.

    ``jacobian`` (ours, encoder-only; decoding is unchanged) scores entries by their first-order
    effect on the *next* backbone call. The step makes ``state' = d + a·c`` with the deterministic
    part ``d = s(t_to)·x̂0 + S(t_den)·ε̂`` and ``a = √(S(t_to)² - S(t_den)²)``; the next prediction
    is ``x̂0(state', t_to) ≈ x̂0(d) + a·J·c`` with ``J = ∂x̂0/∂x_t`` at ``(d, t_to)``, so
    ``argmax_k ⟨C[k], Jᵀ(x - x̂0(d))⟩`` picks the entry that most reduces that residual to first
    order (the second-order term a²‖J·C[k]‖² is dropped: it would take K Jacobian products).
    ``dot`` is this rule with J = I: it spends bits on residual directions the backbone will
    treat as noise and remove; the Jacobian knows which directions survive denoising.
    Costs one forward and one backward pass per step on top of the chain's own call."""

    def __init__(self, x: torch.Tensor, selection: str = "dot"):
        if selection not in SELECTIONS:
            raise ValueError(f"unknown selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
        self.x = x.float()
        self.selection = selection

    def init(self, ctx: StepContext) -> torch.Tensor:
        return best_entries(ctx, self.x, "dot")                        # Eq. 15: argmax ⟨C[k], x⟩

    def step(self, ctx: StepContext) -> torch.Tensor:
        if ctx.coef.noise_scale == 0.0:
            # a step that re-noises nothing carries no information; its token is fixed to 0
            return torch.zeros(self.x.shape[0], ctx.grid.num_blocks, dtype=torch.long, device=self.x.device)
        c = ctx.coef
        if self.selection == "jacobian":
            d = c.denoised(ctx.xh, ctx.eh)
            return best_entries(ctx, ctx.backbone.x0_pullback(d, c.t_to, self.x, ctx.labels), "dot")
        if effective_score(self.selection, ctx.spec.plan.kind) == "dot":
            return best_entries(ctx, self.x - ctx.xh, "dot")
        ideal = (c.s_to * (self.x - ctx.xh) + (c.S_to - c.S_den) * ctx.eh) / c.noise_scale
        return best_entries(ctx, ideal, "l2")


class LookupChooser:
    """Decode: replay stored indices. ``tokens`` (B, R, G) with R = spec.num_token_rows."""

    def __init__(self, tokens: torch.Tensor):
        self.tokens = tokens.long()

    def init(self, ctx):
        return self.tokens[:, ctx.spec.row_of_step(INIT_STEP)].to(ctx.state.device)

    def step(self, ctx):
        return self.tokens[:, ctx.spec.row_of_step(ctx.n)].to(ctx.state.device)


class RandomChooser:
    """DDCM-style generation: uniform random indices; image i's draws come from its own
    generator, so results do not depend on the batch it is in."""

    def __init__(self, generators: list[torch.Generator]):
        self.generators = generators

    def _draw(self, ctx):
        G = ctx.grid.num_blocks
        rows = [torch.randint(ctx.K, (G,), generator=g) for g in self.generators]
        return torch.stack(rows).to(ctx.state.device)

    init = _draw
    step = _draw


# ------------------------------------------------------------------------------------------ the loop
@dataclass
class ChainOutput:
    tokens: torch.Tensor                      # (B, R, G) int64
    state: torch.Tensor                       # state after the last step (at plan.final_times[0])
    latent: torch.Tensor                      # after the final sampler: the reconstructed latent
    states: list = field(default_factory=list)  # optional: state before each step (recorded)
    xhs: list = field(default_factory=list)     # optional: backbone x̂0 at each step (recorded)


def initial_state(spec: ChainSpec, chooser, S0: float, batch: int, labels, device,
                  tokens_out: list) -> torch.Tensor:
    """SPEC §5: the state at the plan's first time t0; ``S0`` = S(t0)."""
    shape = (batch, *spec.grid.latent_shape)
    if spec.init == "zeros":
        return torch.zeros(shape, device=device)
    if spec.init == "gaussian":
        eps = spec.codebook.entries(GAUSSIAN_INIT_STEP, 1, device)[0].reshape(spec.grid.latent_shape)
        return (S0 * eps).expand(shape).clone()
    ctx = StepContext(INIT_STEP, spec, torch.zeros(shape, device=device), None, None, None, labels)
    idx = chooser.init(ctx)
    tokens_out.append(idx)
    return S0 * spec.grid.assemble(ctx.entries(), idx)


def run_chain(backbone, spec: ChainSpec, chooser, batch: int, labels=None, device="cpu",
              record: bool = False, final: bool = True, num_steps: int | None = None) -> ChainOutput:
    """Walk ``spec.plan`` with ``chooser`` picking each step's indices (SPEC §2). ``num_steps``: walk
    only the plan's first steps; the state is then at the last one's t_to and no final sampler runs
    (a caller hands it to another sampler: ``bench_generator.py``'s hand-off rows)."""
    family = backbone.family
    coefs = spec.plan.coefficients(family)
    if num_steps is not None:
        if not 1 <= num_steps <= len(coefs):
            raise ValueError(f"num_steps {num_steps} outside [1, {len(coefs)}] (the plan's steps)")
        coefs, final = coefs[:num_steps], False
    tokens: list = []
    S0 = float(family.S(spec.plan.t_initial))
    state = initial_state(spec, chooser, S0, batch, labels, device, tokens)
    states, xhs = [], []
    for n, coef in enumerate(coefs):
        xh, eh = backbone.predict(state, coef.t_from, labels)
        ctx = StepContext(n, spec, state, xh, eh, coef, labels, backbone, list(tokens))
        idx = chooser.step(ctx)
        tokens.append(idx)
        if record:
            states.append(state)
            xhs.append(xh)
        c = spec.grid.assemble(ctx.entries(), idx) if ctx.fits_in_memory else \
            spec.grid.from_blocks(_gather_blocks(spec, n, idx))
        state = coef.denoised(xh, eh) + coef.noise_scale * c
    out_tokens = torch.stack(tokens, dim=1) if tokens else torch.zeros(batch, 0, spec.grid.num_blocks)
    latent = ode_solve(backbone, state, spec.plan.final_times, labels, spec.plan.final_solver) if final else state
    return ChainOutput(out_tokens.long(), state, latent, states, xhs)


def _gather_blocks(spec: ChainSpec, n: int, idx: torch.Tensor) -> torch.Tensor:
    """Block g of image b from entry idx[b, g], generating only the used chunks (large K)."""
    vecs = spec.codebook.gather(n, idx, spec.codebook_size, idx.device)      # (B, G, D)
    B, G, D = vecs.shape
    blocks = spec.grid.to_blocks(vecs.reshape(B * G, *spec.grid.latent_shape))  # (B·G, G, Db)
    blocks = blocks.reshape(B, G, G, -1)
    g = torch.arange(G, device=idx.device)
    return blocks[:, g, g]                                                      # (B, G, Db)


# ------------------------------------------------------------------------------------------ ODE
@torch.no_grad()
def ode_solve(backbone, state: torch.Tensor, times, labels=None, solver: str = "ddim") -> torch.Tensor:
    """Deterministic probability-flow ODE through ``times`` (descending, last may be clean).

    The first-order step is Eq. 22 with t_den = t_to (DDIM; Euler in σ-space for EDM and flow).
    ``heun`` adds EDM's second-order correction except on the step into the clean time."""
    family = backbone.family
    x = state
    for t, t_next in zip(times[:-1], times[1:]):
        if t == t_next:
            continue
        xh, eh = backbone.predict(x, t, labels)
        if t_next == family.clean_time:
            x = xh
            continue
        s1, S1 = float(family.s(t_next)), float(family.S(t_next))
        if solver == "heun":
            sig0, sig1 = float(family.sigma(t)), S1 / s1
            y0 = x / float(family.s(t))
            y_e = xh + sig1 * eh
            xh2, eh2 = backbone.predict(s1 * y_e, t_next, labels)
            y1 = y0 + (sig1 - sig0) * 0.5 * (eh + eh2)
            x = s1 * y1
        else:
            x = s1 * xh + S1 * eh
    return x


def fresh_noise(like: torch.Tensor, generators=None) -> torch.Tensor:
    """Gaussian noise shaped like ``like``; image b's from ``generators[b]`` when given (so a sample
    does not depend on its batch), else from the global stream."""
    if generators is None:
        return torch.randn_like(like)
    return torch.stack([torch.randn(like.shape[1:], generator=g) for g in generators]).to(like.device)


@torch.no_grad()
def consistency_sample(backbone, noise: torch.Tensor, times, labels=None, generators=None) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): x = f(σ_0·z); then for each
    later σ_i, x = f(x + √(σ_i² - σ_min²)·z_i). Each step is Eq. 22 with t_den = clean (x̂0 kept,
    ε̂ dropped) and fresh Gaussian noise in place of a codebook vector; image b's noise z_i comes
    from ``generators[b]`` (``noise`` is z_0), so a sample does not depend on its batch."""
    family = backbone.family
    x = float(family.S(times[0])) * noise
    for i, t in enumerate(times):
        xh, _ = backbone.predict(x, t, labels)
        if i + 1 == len(times):
            return xh
        scale = math.sqrt(float(family.S(times[i + 1])) ** 2 - float(family.S(family.t_min)) ** 2)
        z = fresh_noise(xh, generators)
        x = xh + scale * z
    return x


@torch.no_grad()
def ancestral_sample(backbone, noise: torch.Tensor, times, labels=None, generators=None) -> torch.Tensor:
    """The ancestral sampler (DDPM's posterior step, Ho et al. 2020 Eq. 7; Euler-ancestral in σ-space
    for EDM and flow): each step is Eq. 22 with S(t_den) = s(t')·σ(t')²/σ(t), the η = 1 split of
    S(t')² between ε̂ and fresh noise, and fresh Gaussian noise in place of a codebook vector. For VP
    this is exactly DDPM's posterior mean and variance σ_t'² (1 - ᾱ_t/ᾱ_t')/(1 - ᾱ_t)·(1 - ᾱ_t').
    Image b's noise comes from ``generators[b]`` (``noise`` is the start), so a sample does not
    depend on its batch. ``times``: descending, as ``plans.ode_times`` gives them."""
    family = backbone.family
    x = float(family.S(times[0])) * noise
    for t, t_next in zip(times[:-1], times[1:]):
        xh, eh = backbone.predict(x, t, labels)
        if t_next == family.clean_time:
            x = xh
            continue
        s1, S1 = float(family.s(t_next)), float(family.S(t_next))
        S_den = s1 * (S1 / s1) ** 2 / float(family.sigma(t))
        z = fresh_noise(xh, generators)
        x = s1 * xh + S_den * eh + math.sqrt(max(S1 ** 2 - S_den ** 2, 0.0)) * z
    return x


@torch.no_grad()
def own_sample(backbone, noise: torch.Tensor, steps: int, labels=None, generators=None) -> torch.Tensor:
    """A backbone's own sampler with ``steps`` model calls (Heun counts two per step but the last):
    the multistep consistency sampler for consistency families, else the family's deterministic ODE."""
    family = backbone.family
    if hasattr(family, "sampler_times"):
        return consistency_sample(backbone, noise, family.sampler_times(steps), labels, generators)
    times = ode_times(family, steps)
    return ode_solve(backbone, float(family.S(times[0])) * noise, times, labels, family.ode_solver)
