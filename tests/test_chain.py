"""SPEC §2/§4/§5: the one chain. Eq. 22 marginal, p = 1 = DDIM, DDCM step, bit-exact replay,
error falling with N and K (exact empirical denoiser)."""
import math

import pytest
import torch

from rdpm_gddcm.backbones import Backbone, EmpiricalBackbone
from rdpm_gddcm.chain import (SELECTIONS, ChainSpec, EncodeChooser, LookupChooser, RandomChooser, StepContext,
                              best_entries, ode_solve, run_chain)
from rdpm_gddcm.codebooks import Grid, VirtualCodebook
from rdpm_gddcm.families import Family
from rdpm_gddcm.plans import Plan, PlanConfig, build_plan, ode_times

# results that depend on float kernels: CI reruns these under other ATEN_CPU_CAPABILITY values
pytestmark = pytest.mark.numerics


class OracleBackbone(Backbone):
    """x̂0 = the true x; ε̂ = fresh noise independent of everything else."""

    def __init__(self, family, x, seed=0):
        super().__init__()
        self.family, self.x = family, x
        self.latent_shape = tuple(x.shape[1:])
        self.g = torch.Generator().manual_seed(seed)

    def _predict(self, x_t, t, y):
        return self.x.expand_as(x_t).clone(), torch.randn(x_t.shape, generator=self.g)


@pytest.mark.parametrize("name,triple", [("flow", (0.6, 0.3, 0.45)), ("ve", (2.0, 0.5, 1.0)),
                                         ("vp-discrete", (600.0, 200.0, 400.0))])
def test_eq22_marginal_mean_and_variance(name, triple):
    """With xh = x and eh independent of c, the new state has mean s(t_to)·x, variance S(t_to)²."""
    f = Family(name)
    B = 4000
    x = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    plan = Plan("trajectory", [triple], [triple[2], f.clean_time])
    spec = ChainSpec(plan, VirtualCodebook(0, 16), Grid((1, 4, 4)), codebook_size=4096, init="zeros")
    gens = [torch.Generator().manual_seed(i) for i in range(B)]
    out = run_chain(OracleBackbone(f, x), spec, RandomChooser(gens), B, final=False)
    t_to = triple[2]
    mean, var = out.state.mean(0), out.state.var(0)
    assert torch.allclose(mean, float(f.s(t_to)) * x[0], atol=4 * float(f.S(t_to)) / math.sqrt(B) * 3)
    assert torch.allclose(var, torch.full_like(var, float(f.S(t_to)) ** 2), rtol=0.12)


def test_p_one_step_equals_ddim_step():
    """Eq. 22 with t_den = t_to is the deterministic DDIM step s(t')·x̂0 + S(t')·ε̂."""
    f = Family("vp-discrete")
    data = torch.randn(6, 3, 4, 4)
    bb = EmpiricalBackbone(data, f)
    x_t = torch.randn(2, 3, 4, 4)
    plan = Plan("trajectory", [(500.0, 300.0, 300.0)], [300.0, -1.0])
    coef = plan.coefficients(f)[0]
    assert coef.noise_scale == 0.0
    xh, eh = bb.predict(x_t, 500.0)
    ddim = float(f.s(300)) * xh + float(f.S(300)) * eh
    ode = ode_solve(bb, x_t, [500.0, 300.0])
    assert torch.allclose(ode, ddim, atol=1e-6)
    step = coef.s_to * xh + coef.S_den * eh + coef.noise_scale * torch.randn_like(xh)
    assert torch.allclose(step, ddim, atol=1e-6)


def test_ddcm_step_matches_official_formula():
    f = Family("vp-discrete")
    plan = build_plan(PlanConfig(kind="ddcm", num_steps=20), f)
    t, _, t_prev = plan.steps[5]
    c = plan.coefficients(f)[5]
    a_t, a_p = float(f.alpha_bar(t)), float(f.alpha_bar(t_prev))
    sigma = math.sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p))
    xh, eh, noise = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8)
    official = math.sqrt(a_p) * xh + math.sqrt(1 - a_p - sigma ** 2) * eh + sigma * noise
    ours = c.s_to * xh + c.S_den * eh + c.noise_scale * noise
    assert torch.allclose(ours, official, atol=1e-6)


def _setup(kind, N, K, grid=(1, 1), init="codebook", selection="dot", family="flow", seed=0, p=0.5,
           targets_in_data=False):
    torch.manual_seed(seed)
    f = Family(family)
    data = torch.rand(256, 3, 8, 8) * 2 - 1
    bb = EmpiricalBackbone(data, f)
    cfg = PlanConfig(kind=kind, num_steps=N, p=0.0 if kind == "fixed-point" else p)
    if kind == "fixed-point":
        cfg.t_fixed, cfg.delta_min, cfg.delta_max, cfg.intervals = (
            (0.3, 0.01, 0.25, 8) if family == "flow" else (None, None, None, 8))
    plan = build_plan(cfg, f)
    spec = ChainSpec(plan, VirtualCodebook(7, 3 * 64), Grid((3, 8, 8), *grid), K, init=init)
    x = data[:8] if targets_in_data else torch.rand(4, 3, 8, 8) * 2 - 1
    return bb, spec, x


@pytest.mark.parametrize("kind", ["fixed-point", "trajectory", "ddcm"])
@pytest.mark.parametrize("grid", [(1, 1), (2, 2)])
@pytest.mark.parametrize("selection", ["dot", "l2", "jacobian"])
def test_encode_decode_bit_exact(kind, grid, selection):
    family = "vp-discrete" if kind == "ddcm" else "flow"
    bb, spec, x = _setup(kind, 12, 64, grid, family=family)
    enc = run_chain(bb, spec, EncodeChooser(x, selection), 4)
    assert enc.tokens.shape == (4, spec.num_token_rows, grid[0] * grid[1])
    dec = run_chain(bb, spec, LookupChooser(enc.tokens), 4)
    assert torch.equal(enc.latent, dec.latent)
    # decoding other tokens gives something else (the tokens carry the information)
    other = run_chain(bb, spec, LookupChooser((enc.tokens + 1) % 64), 4)
    assert not torch.equal(other.latent, enc.latent)


@pytest.mark.parametrize("selection", ["l2", "jacobian"])
def test_fixed_point_descent_decodes_and_starts_closer(selection):
    """--descent-steps: bit-exact decode, and the fixed point starts from a better x̂0 than Algorithm 2's
    one-token init at T_s (the point of spending steps on the descent)."""
    f = Family("flow")
    torch.manual_seed(0)
    data = torch.rand(256, 3, 8, 8) * 2 - 1
    bb = EmpiricalBackbone(data, f)
    x = data[:4] + 0.05 * torch.randn(4, 3, 8, 8)
    err_at_Ts = []
    for M in (0, 6):
        plan = build_plan(PlanConfig(kind="fixed-point", num_steps=16, t_fixed=0.3, delta_min=0.01, delta_max=0.25,
                                     intervals=8, descent_steps=M), f)
        spec = ChainSpec(plan, VirtualCodebook(7, 3 * 64), Grid((3, 8, 8), 1, 1), 64)
        enc = run_chain(bb, spec, EncodeChooser(x, selection), 4, record=True)
        assert torch.equal(run_chain(bb, spec, LookupChooser(enc.tokens), 4).latent, enc.latent)
        err_at_Ts.append(((enc.xhs[M] - x) ** 2).mean().item())       # x̂0 at the first fixed-point step
    assert err_at_Ts[1] < 0.75 * err_at_Ts[0]           # measured ratios 0.56 (l2) and below


@pytest.mark.parametrize("init", ["codebook", "gaussian", "zeros"])
def test_init_kinds_decode(init):
    bb, spec, x = _setup("trajectory", 6, 32, init=init)
    enc = run_chain(bb, spec, EncodeChooser(x), 4)
    assert enc.tokens.shape[1] == 6 + (init == "codebook")
    dec = run_chain(bb, spec, LookupChooser(enc.tokens), 4)
    assert torch.equal(enc.latent, dec.latent)


def _mse(bb, spec, x):
    return ((run_chain(bb, spec, EncodeChooser(x, "l2"), x.shape[0]).latent - x) ** 2).mean().item()


def test_error_falls_with_N_and_K():
    """The exact denoiser of a 256-image set: the chain must single out the target among them,
    which more tokens (N) and larger codebooks (K) do better."""
    errs_N = []
    for N in (1, 64):
        bb, spec, x = _setup("fixed-point", N, 256, targets_in_data=True)
        errs_N.append(_mse(bb, spec, x))
    errs_K = []
    for K in (64, 1024):
        bb, spec, x = _setup("fixed-point", 64, K, targets_in_data=True)
        errs_K.append(_mse(bb, spec, x))
    assert errs_N[1] < 0.25 * errs_N[0], errs_N
    assert errs_K[1] < 0.25 * errs_K[0], errs_K


def test_chunked_selection_equals_in_memory():
    bb, spec, x = _setup("trajectory", 5, 1000, grid=(2, 2))
    full = run_chain(bb, spec, EncodeChooser(x, "l2"), 4)
    spec.max_codebook_bytes = 256 * spec.codebook.dim * 4     # force 256-row chunks
    spec.codebook.cache_bytes = 0
    chunked = run_chain(bb, spec, EncodeChooser(x, "l2"), 4)
    assert torch.equal(full.tokens, chunked.tokens)
    assert torch.allclose(full.latent, chunked.latent, atol=1e-6)


def test_l2_picks_nearest_to_ideal_vector():
    """The l2 rule is argmin ‖C[k] - c*‖², even when entry norms differ (2D blocks)."""
    spec = ChainSpec(Plan("trajectory", [(0.5, 0.2, 0.3)], [0.3, 0.0]), VirtualCodebook(1, 8), Grid((2, 2, 2), 1, 2), 50)
    C = spec.codebook.entries(0, 50)
    ctx = StepContext(0, spec, torch.zeros(3, 2, 2, 2), None, None, None, None)
    target = torch.randn(3, 2, 2, 2)
    got = best_entries(ctx, target, "l2")
    blocks_t = spec.grid.to_blocks(target)
    blocks_C = spec.grid.entries_to_blocks(C)
    want = torch.stack([((blocks_C[:, g][None] - blocks_t[:, g][:, None]) ** 2).sum(-1).argmin(1)
                        for g in range(2)], dim=1)
    assert torch.equal(got, want)


def test_random_chooser_independent_of_batch():
    bb, spec, _ = _setup("trajectory", 4, 32, grid=(2, 2))
    gens = lambda ids: [torch.Generator().manual_seed(1000 + i) for i in ids]  # noqa: E731
    both = run_chain(bb, spec, RandomChooser(gens([0, 1])), 2).tokens
    one = run_chain(bb, spec, RandomChooser(gens([1])), 1).tokens
    assert torch.equal(both[1:], one)


# ------------------------------------------------------------------------------------------ jacobian selection
def test_x0_pullback_is_the_wiener_filter_transpose():
    """For the linear-Gaussian denoiser J = U·diag(s·λ/(s²λ + S²))·Uᵀ exactly."""
    from rdpm_gddcm.backbones import LinearGaussianBackbone
    torch.manual_seed(0)
    f = Family("flow")
    bb = LinearGaussianBackbone.fit(torch.randn(500, 3, 2, 2) * torch.linspace(0.05, 1, 12).reshape(3, 2, 2), f)
    x_t, target, t = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2), 0.4
    xh, _ = bb.predict(x_t, t)
    s, S = float(f.s(t)), float(f.S(t))
    J = bb.eigvecs @ torch.diag(s * bb.eigvals / (s * s * bb.eigvals + S * S)) @ bb.eigvecs.T
    want = ((target - xh).flatten(1) @ J).reshape(x_t.shape)
    assert torch.allclose(bb.x0_pullback(x_t, t, target), want, atol=1e-5)


def test_x0_pullback_matches_finite_differences():
    """⟨Jᵀr, v⟩ = ⟨r, J·v⟩ for a nonlinear denoiser (the empirical one), J·v by central differences."""
    torch.manual_seed(1)
    f = Family("flow")
    bb = EmpiricalBackbone(torch.rand(32, 3, 4, 4) * 2 - 1, f)
    x_t, target, t = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4), 0.6
    r = target - bb.predict(x_t, t)[0]
    g = bb.x0_pullback(x_t, t, target)
    for _ in range(3):
        v, h = torch.randn_like(x_t), 1e-2
        jv = (bb.predict(x_t + h * v, t)[0] - bb.predict(x_t - h * v, t)[0]) / (2 * h)
        lhs, rhs = (g * v).flatten(1).sum(1), (r * jv).flatten(1).sum(1)
        assert torch.allclose(lhs, rhs, rtol=2e-2, atol=2e-2), (lhs, rhs)


def test_jacobian_selection_picks_the_entry_that_best_reduces_the_next_residual():
    """A small step: the jacobian pick is the entry whose actual next x̂0 is closest to x for most
    images (its first-order model is accurate), far more often than dot's residual-aligned pick."""
    torch.manual_seed(0)
    f = Family("flow")
    data = torch.rand(64, 3, 4, 4) * 2 - 1
    bb = EmpiricalBackbone(data, f)
    plan = Plan("trajectory", [(0.5, 0.45, 0.451)], [0.451, 0.0])
    spec = ChainSpec(plan, VirtualCodebook(5, 48), Grid((3, 4, 4), 1, 1), 256)
    B = 32
    x = data[:B] + 0.3 * torch.randn(B, 3, 4, 4)
    state = 0.5 * data[torch.randperm(64)[:B]] + 0.5 * torch.randn(B, 3, 4, 4)
    coef = plan.coefficients(f)[0]
    xh, eh = bb.predict(state, coef.t_from)
    ctx = StepContext(0, spec, state, xh, eh, coef, None, bb)
    d = coef.s_to * xh + coef.S_den * eh
    nxt = bb.predict((d[:, None] + coef.noise_scale * ctx.entries().reshape(1, -1, 3, 4, 4)).reshape(-1, 3, 4, 4),
                     coef.t_to)[0]
    err = ((nxt.reshape(B, -1, 48) - x.reshape(B, 1, 48)) ** 2).sum(-1)      # (B, K): every entry's outcome
    hits = {sel: (EncodeChooser(x, sel).step(ctx)[:, 0] == err.argmin(1)).float().mean().item()
            for sel in ("dot", "jacobian")}
    assert hits["jacobian"] >= 0.6 and hits["dot"] <= 0.2, hits


def test_effective_score_of_each_selection():
    """The generator's tied head mirrors the scoring form the encoder used (jacobian = dot form)."""
    from rdpm_gddcm.chain import effective_score
    assert [effective_score(s, "fixed-point") for s in SELECTIONS] == ["dot", "l2", "dot"]
    assert {effective_score(s, "ddcm") for s in SELECTIONS} == {"dot"}


@pytest.mark.parametrize("name", ["flow", "ve", "vp-discrete"])
def test_ancestral_sampler_draws_the_data_distribution(name):
    """With the exact denoiser of Gaussian data (the linear-Gaussian backbone fitted to it), the
    ancestral sampler's samples have the data's mean and per-direction variance, and one image's
    sample does not depend on the batch it is in."""
    from rdpm_gddcm.backbones import LinearGaussianBackbone
    from rdpm_gddcm.chain import ancestral_sample
    f = Family(name)
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.05, 0.2, 0.5, 0.9]).reshape(1, 1, 2, 2)
    mu = torch.tensor([0.3, -0.2, 0.1, 0.0]).reshape(1, 1, 2, 2)
    data = mu + scale * torch.randn(20000, 1, 2, 2, generator=g, dtype=torch.float64)
    bb = LinearGaussianBackbone.fit(data, f)
    B = 3000
    torch.manual_seed(1)                                                # one stream: fast for many samples
    out = ancestral_sample(bb, torch.randn(B, 1, 2, 2), ode_times(f, 1000), None)  # many steps: small discretisation bias
    assert torch.allclose(out.mean(0), data.mean(0).float(), atol=4 * 0.9 / math.sqrt(B))
    assert torch.allclose(out.std(0), data.std(0).float(), rtol=0.08)
    gens = lambda: [torch.Generator().manual_seed(1000 + i) for i in range(3)]  # noqa: E731
    noise = torch.stack([torch.randn(1, 2, 2, generator=gi) for gi in gens()])
    three = ancestral_sample(bb, noise, ode_times(f, 20), None, gens())
    one = ancestral_sample(bb, noise[2:], ode_times(f, 20), None, gens()[2:])
    assert torch.allclose(one, three[2:], atol=1e-6) and not torch.allclose(three[0], three[1])


def test_num_steps_stops_the_chain_where_the_full_walk_passes():
    """run_chain(num_steps=k) walks the plan's first k steps: its state is the full walk's state before step k
    (the same loop, so exactly), with k token maps plus the init map, and no final sampler; k outside the
    plan is refused."""
    from rdpm_gddcm.backbones import LinearGaussianBackbone
    f = Family("ve")
    data = torch.randn(64, 3, 4, 4) * 0.5
    bb = LinearGaussianBackbone.fit(data, f)
    plan = build_plan(PlanConfig(kind="trajectory", num_steps=6, p=0.7, t_start=20.0, t_end=0.05), f)
    spec = ChainSpec(plan, VirtualCodebook(0, 48), Grid((3, 4, 4), 2, 2), codebook_size=256)
    full = run_chain(bb, spec, EncodeChooser(data[:3], "dot"), 3, record=True)
    part = run_chain(bb, spec, LookupChooser(full.tokens), 3, num_steps=4)
    assert torch.equal(part.state, full.states[4]) and torch.equal(part.latent, part.state)
    assert torch.equal(part.tokens, full.tokens[:, :5])
    for bad in (0, 7):
        with pytest.raises(ValueError, match="num_steps"):
            run_chain(bb, spec, LookupChooser(full.tokens), 3, num_steps=bad)
