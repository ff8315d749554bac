"""SPEC §9: the RDPM-style generator, its chooser, training and sampling."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rdpm_gddcm import sample, tokenize, train_generator
from rdpm_gddcm.chain import ChainSpec, StepContext
from rdpm_gddcm.codebooks import Grid, VirtualCodebook
from rdpm_gddcm.generator import (GeneratorConfig, ModelChooser, TokenGenerator, build_generator, checkerboard, kept_after,
                                  filter_logits, known_blocks, tied_logits, token_history)
from rdpm_gddcm.guidance import cfg_scale_at
from rdpm_gddcm.plans import Plan
from rdpm_gddcm.token_io import TokenDataset

# results that depend on float kernels: CI reruns these under other ATEN_CPU_CAPABILITY values
pytestmark = pytest.mark.numerics


def tiny_cfg(**kw):
    return GeneratorConfig(**{"num_blocks": 4, "block_dim": 12, "num_rows": 3, "codebook_size": 32, "num_classes": 5,
                              "hidden": 32, "depth": 1, "heads": 2, **kw})


def test_shapes_tied_and_untied():
    for head in ("tied", "untied"):
        m = TokenGenerator(tiny_cfg(head=head))
        sb, xb = torch.randn(3, 4, 12), torch.randn(3, 4, 12)
        f = m(sb, xb, torch.tensor([0, 1, 2]), torch.tensor([0, 4, 5]))
        cb = torch.randn(32, 4, 12) if head == "tied" else None
        assert f.shape == ((3, 4, 12) if head == "tied" else (3, 4, 32))
        assert m.head_logits(f, cb).shape == (3, 4, 32)


def test_tied_logits_equal_l2_rule_at_ideal_vector():
    """With u = c*, argmax of κ(⟨u,C⟩ - ½‖C‖²) is argmin ‖C - c*‖² (the encoder's l2 rule), and
    the logits are -κ/2·‖C - c*‖² up to a per-block constant."""
    C = torch.randn(50, 4, 12) * torch.linspace(0.5, 2, 50)[:, None, None]     # entries of unequal norms
    u = torch.randn(2, 4, 12)
    lg = tied_logits(u, C, kappa=3.0)
    d2 = ((u[:, :, None, :] - C.permute(1, 0, 2)[None]) ** 2).sum(-1)          # (B, G, K)
    assert torch.equal(lg.argmax(-1), d2.argmin(-1))
    diff = lg + 1.5 * d2
    assert torch.allclose(diff, diff[..., :1].expand_as(diff), atol=1e-4)


def test_tied_dot_head_equals_encoder_dot_choice():
    """For ``dot`` tokens the tied head is κ⟨u, C⟩: with u = x - x̂0 its argmax is the encoder's own
    ``dot`` choice (chain.best_entries), block by block, and κ only rescales the logits."""
    from rdpm_gddcm.chain import EncodeChooser
    ctx = _ctx(B=4)
    x = torch.randn(4, 3, 4, 4) * 0.3
    enc = EncodeChooser(x, "dot").step(ctx.__class__(ctx.n, ctx.spec, ctx.state, ctx.xh, torch.randn(4, 3, 4, 4),
                                                     _StepCoef(), None))
    C = ctx.grid.entries_to_blocks(ctx.entries())
    lg = tied_logits(ctx.grid.to_blocks(x - ctx.xh), C, kappa=2.0, score="dot")
    assert torch.equal(lg.argmax(-1), enc)
    assert torch.allclose(lg, 2.0 * tied_logits(ctx.grid.to_blocks(x - ctx.xh), C, kappa=1.0, score="dot"))
    with pytest.raises(ValueError, match="tied-head score"):
        TokenGenerator(tiny_cfg(score="cosine"))


def test_rank_head_shapes_formula_and_plain_tied_at_zero():
    """head_rank r: features carry u and r vectors per block; the extra term is ½·CᵀΣC/Db with
    Σ = Σ_j v_j v_jᵀ (so it only depends on the span of the v's: mixing them by an orthogonal
    matrix leaves the logits unchanged), and with v = 0 the head is the plain tied head."""
    m = TokenGenerator(tiny_cfg(head_rank=2, score="dot"))
    f = m(torch.randn(3, 4, 12), torch.randn(3, 4, 12), torch.tensor([0, 1, 2]), torch.tensor([0, 4, 5]))
    assert f.shape == (3, 4, 12 * 3)
    C = torch.randn(32, 4, 12)
    lg = m.head_logits(f, C)
    assert lg.shape == (3, 4, 32)
    u, v = f[..., :12], f[..., 12:].unflatten(-1, (2, 12))
    sigma = torch.einsum("bgrd,bgre->bgde", v, v)
    quad = 0.5 * torch.einsum("kgd,bgde,kge->bgk", C, sigma, C) / 12
    kappa = m.log_kappa.exp()
    assert torch.allclose(lg, kappa * torch.einsum("bgd,kgd->bgk", u, C) + quad, atol=1e-4)
    Q = torch.linalg.qr(torch.randn(2, 2)).Q
    assert torch.allclose(tied_logits(u, C, kappa, "dot", torch.einsum("rs,bgsd->bgrd", Q, v)), lg, atol=1e-4)
    # v = 0 is the plain tied head (two code paths: equal to rounding, not bitwise, on every CPU)
    assert torch.allclose(tied_logits(u, C, kappa, "dot", torch.zeros_like(v)), tied_logits(u, C, kappa, "dot"),
                          rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="head_rank"):
        TokenGenerator(tiny_cfg(head="untied", head_rank=1))


def test_rank_head_fits_zero_mean_residual_picks_that_linear_head_cannot():
    """Why the covariance term exists: when the residual has mean 0 but a dominant direction, the
    encoder's picks favour entries aligned (either sign) with it. A linear tied head can only lean to
    one sign; a rank-1 head learns both and reaches a much lower cross-entropy."""
    g = torch.Generator().manual_seed(0)
    K, D, n = 64, 8, 4000
    C = torch.randn(K, 1, D, generator=g)
    direction = torch.randn(D, generator=g)
    r = torch.randn(n, 1, generator=g) * direction * 2 + 0.1 * torch.randn(n, D, generator=g)
    target = torch.einsum("nd,kd->nk", r, C[:, 0]).argmax(-1)

    def fit(rank):
        u = torch.zeros(1, 1, D, requires_grad=True)
        v = (0.1 * torch.randn(1, 1, rank, D, generator=g)).requires_grad_(True)
        opt = torch.optim.Adam([u, v], lr=0.05)
        for _ in range(300):
            ce = F.cross_entropy(tied_logits(u, C, 1.0, "dot", v if rank else None)[0].expand(n, K), target)
            opt.zero_grad()
            ce.backward()
            opt.step()
        return ce.item()

    linear, quadratic = fit(0), fit(1)           # measured: 3.69 and 1.29 nats (uniform: 4.16)
    assert quadratic < linear - 1.0


def test_isotropic_head_formula_and_same_function_at_start():
    """head_isotropic: the features end with one scalar s_b per block and the logits gain
    ½·s_b·‖C[k]_b‖²/Db; its layer starts at zero, so a model without the term, copied into one with
    it, gives the same logits (the --init-from case); an untied head refuses the term."""
    plain = TokenGenerator(tiny_cfg(head_rank=2, score="dot"))
    m = TokenGenerator(tiny_cfg(head_rank=2, score="dot", head_isotropic=True))
    missing = m.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["iso.bias", "iso.weight"]
    args = (torch.randn(3, 4, 12), torch.randn(3, 4, 12), torch.tensor([0, 1, 2]), torch.tensor([0, 4, 5]))
    C = torch.randn(32, 4, 12) * torch.linspace(0.5, 2, 32)[:, None, None]
    f = m(*args)
    assert f.shape == (3, 4, 12 * 3 + 1)
    assert torch.allclose(m.head_logits(f, C), plain.head_logits(plain(*args), C), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        m.iso.bias.fill_(3.0)
    f = m(*args)
    s = f[..., -1]
    extra = 0.5 * s[..., None] * (C * C).sum(-1).T[None] / 12
    assert torch.allclose(m.head_logits(f, C), plain.head_logits(f[..., :-1], C) + extra, atol=1e-4)
    assert (m.head_logits(f, C).softmax(-1) * (C * C).sum(-1).T[None]).sum(-1).mean() > \
        (plain.head_logits(f[..., :-1], C).softmax(-1) * (C * C).sum(-1).T[None]).sum(-1).mean()   # longer picks
    with pytest.raises(ValueError, match="head_isotropic"):
        TokenGenerator(tiny_cfg(head="untied", head_isotropic=True))


def test_history_input_starts_as_the_same_function_and_is_read():
    """history_maps: a zero-initialised input layer, so a model without it copied into one with it is the
    same function whatever the history (the --init-from case); once trained, the history changes the
    output, None means no earlier maps (= a zero history), and a model without the layer refuses one."""
    plain = TokenGenerator(tiny_cfg())
    m = TokenGenerator(tiny_cfg(history_maps=2))
    assert sorted(m.load_state_dict(plain.state_dict(), strict=False).missing_keys) == ["hist.bias", "hist.weight"]
    args = (torch.randn(3, 4, 12), torch.randn(3, 4, 12), torch.tensor([0, 1, 2]), torch.tensor([0, 4, 5]))
    hist = torch.randn(3, 4, 24)
    assert torch.allclose(m(*args, hist), plain(*args), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.nn.init.normal_(m.hist.weight, std=0.3)
        torch.nn.init.normal_(m.hist.bias, std=0.3)
    assert not torch.allclose(m(*args, hist), m(*args, torch.zeros_like(hist)), atol=1e-3)
    assert torch.allclose(m(*args), m(*args, torch.zeros_like(hist)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="history"):
        plain(*args, hist)
    with pytest.raises(ValueError, match="history_maps"):
        TokenGenerator(tiny_cfg(history_maps=-1))


def test_two_pass_input_starts_as_the_same_function_and_is_read():
    """two_pass: the known-blocks layer is zero-initialised (a model without it, copied in, is the same
    function whatever is known: the --init-from case); once trained, what is known changes the output, None
    is the first pass (= nothing known), and a model without the layer refuses known blocks."""
    plain = TokenGenerator(tiny_cfg())
    m = TokenGenerator(tiny_cfg(two_pass=True))
    assert sorted(m.load_state_dict(plain.state_dict(), strict=False).missing_keys) == ["known.bias", "known.weight"]
    args = (torch.randn(3, 4, 12), torch.randn(3, 4, 12), torch.tensor([0, 1, 2]), torch.tensor([0, 4, 5]))
    known = torch.randn(3, 4, 13)
    assert torch.allclose(m(*args, None, known), plain(*args), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.nn.init.normal_(m.known.weight, std=0.3)
        torch.nn.init.normal_(m.known.bias, std=0.3)
    assert not torch.allclose(m(*args, None, known), m(*args, None, torch.zeros_like(known)), atol=1e-3)
    assert torch.allclose(m(*args), m(*args, None, torch.zeros_like(known)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="two_pass"):
        plain(*args, None, known)


def test_checkerboard_halves_and_known_blocks():
    """The two checkerboard parities partition the grid, neighbouring blocks (row-major, as Grid.to_blocks)
    are in different halves; known_blocks is [C[z_b]_b, 1] on the known blocks and exactly zero elsewhere."""
    for gh, gw in ((1, 1), (2, 2), (3, 4), (8, 8)):
        grid = Grid((3, 2 * gh, 2 * gw), gh, gw)
        a, b = checkerboard(grid, 0), checkerboard(grid, 1)
        assert a.shape == (gh * gw,) and torch.equal(a, ~b) and bool(a[0])
        board = a.view(gh, gw)
        assert (board[1:] != board[:-1]).all() and (board[:, 1:] != board[:, :-1]).all()
        assert torch.equal(checkerboard(grid, 2), a)                 # parity is mod 2: the row m picks it
    cb = torch.randn(32, 4, 12)
    z = torch.randint(32, (3, 4))
    known = torch.tensor([[True, False, False, True]] * 2 + [[False] * 4])
    out = known_blocks(cb, z, known)
    assert out.shape == (3, 4, 13)
    for i in range(3):
        for g in range(4):
            want = torch.cat([cb[z[i, g], g], torch.ones(1)]) if known[i, g] else torch.zeros(13)
            assert torch.equal(out[i, g], want)


def test_two_pass_chooser_keeps_one_half_and_redraws_the_other_given_it():
    """A two-pass ModelChooser: per map, one call with nothing known, then one given known_blocks of that
    draw on the checkerboard of the row's parity, in both CFG halves; the result is the first draw on that
    half and the second draw on the other; a non-two-pass chooser calls the model once."""
    torch.manual_seed(0)
    m = TokenGenerator(tiny_cfg(two_pass=True))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    y = torch.tensor([1, 2, 3])
    for n in (-1, 0, 1):                                      # the init row (m = 0) and chain steps (rows 1, 2)
        ctx = _ctx(n)
        mc = ModelChooser(m, y, [torch.Generator().manual_seed(i) for i in range(3)], cfg_scale=2.0)
        seen, draws, forward, draw = [], [], m.forward, mc.draw
        m.forward = lambda *a: (seen.append(a[5] if len(a) > 5 else None), forward(*a))[1]
        mc.draw = lambda logits: (draws.append(draw(logits)), draws[-1])[1]
        try:
            out = mc.step(ctx)
        finally:
            del m.forward
        row = ctx.spec.row_of_step(n)
        keep = checkerboard(ctx.grid, row).expand(3, -1)
        assert len(seen) == 2 and seen[0] is None
        want = known_blocks(ctx.spec.codebook_blocks(row, "cpu"), draws[0], keep)
        assert torch.equal(seen[1], torch.cat([want, want]))          # the image's half, class and null branch
        assert torch.equal(out, torch.where(keep, draws[0], draws[1]))
        assert not torch.equal(draws[0][~keep], draws[1][~keep])
    calls = []
    plain = TokenGenerator(tiny_cfg())
    fwd = plain.forward
    plain.forward = lambda *a: (calls.append(1), fwd(*a))[1]
    ModelChooser(plain, y, [torch.Generator().manual_seed(i) for i in range(3)], cfg_scale=2.0).step(_ctx())
    assert len(calls) == 1


def test_masked_pass_schedule_and_training_subsets():
    """kept_after grows with the pass, keeps at least one block and redraws at least one, and follows
    ⌈G·(1 - cos(π/2·s/P))⌉; training shows nothing to about 1/P of the examples and otherwise a random subset
    of 1..G-1 blocks, each block as likely as any other, as a function of the generator's seed."""
    import math
    for G in (4, 16, 64):
        for P in (2, 3, 4, 8):
            kept = [kept_after(s, P, G) for s in range(1, P)]
            assert kept == sorted(kept) and all(1 <= k <= G - 1 for k in kept)
            assert all(k == min(G - 1, max(1, math.ceil(round(G * (1 - math.cos(math.pi / 2 * s / P)), 9))))
                       for s, k in zip(range(1, P), kept))
    assert [kept_after(s, 4, 64) for s in (1, 2, 3)] == [5, 19, 40]
    shown = train_generator.shown_subsets(16, 8000, 4, torch.Generator().manual_seed(0))
    n = shown.sum(1)
    assert 0.22 < (n == 0).float().mean() < 0.28 and int(n.max()) <= 15
    assert (shown[n > 0].float().mean(0) - shown[n > 0].float().mean()).abs().max() < 0.03    # no block favoured
    assert torch.equal(shown, train_generator.shown_subsets(16, 8000, 4, torch.Generator().manual_seed(0)))


def test_masked_pass_chooser_keeps_the_most_confident_blocks_and_redraws_the_rest():
    """A map_passes = P ModelChooser: per map, P model calls (both CFG halves in each), the first with nothing
    known; pass s + 1 is given exactly the kept_after(s) most confident blocks of what is drawn so far (the
    drawn token's log-probability; kept blocks stay kept and unchanged); the result is the last draw where
    nothing was kept. --map-passes 1 calls it once; a generator trained without them refuses more."""
    torch.manual_seed(0)
    m = TokenGenerator(tiny_cfg(map_passes=3))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    y = torch.tensor([1, 2, 3])
    conf = lambda lg, tk: lg.log_softmax(-1).gather(-1, tk.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    for n in (-1, 0, 1):                                      # the init row (m = 0) and chain steps (rows 1, 2)
        ctx = _ctx(n)
        cb = ctx.spec.codebook_blocks(ctx.spec.row_of_step(n), "cpu")
        mc = ModelChooser(m, y, [torch.Generator().manual_seed(i) for i in range(3)], cfg_scale=2.0)
        assert mc.map_passes == 3
        seen, logits, draws = [], [], []
        forward, logits_of, draw = m.forward, mc.logits, mc.draw
        m.forward = lambda *a: (seen.append(a[5] if len(a) > 5 else None), forward(*a))[1]
        mc.logits = lambda c, known=None: (logits.append(logits_of(c, known)), logits[-1])[1]
        mc.draw = lambda lg: (draws.append(draw(lg)), draws[-1])[1]
        try:
            out = mc.step(ctx)
        finally:
            del m.forward
        assert len(seen) == 3 and seen[0] is None
        tokens, score, keep = draws[0], conf(logits[0], draws[0]), torch.zeros(3, 4, dtype=torch.bool)
        for s in (1, 2):
            known = seen[s][:3]
            assert torch.equal(seen[s][3:], known)                     # the image's kept blocks, in both branches
            new_keep = known[..., -1].bool()
            assert (new_keep.sum(1) == kept_after(s, 3, 4)).all() and not (keep & ~new_keep).any()
            ranked = score.masked_fill(keep, float("inf"))
            assert (ranked.masked_fill(~new_keep, float("inf")).min(1).values
                    > ranked.masked_fill(new_keep, -float("inf")).max(1).values).all()
            want = torch.cat([cb[tokens, torch.arange(4)] * new_keep[..., None], new_keep[..., None].float()], -1)
            assert torch.equal(known, want)
            keep = new_keep
            score = torch.where(keep, score, conf(logits[s], draws[s]))
            tokens = torch.where(keep, tokens, draws[s])
        assert torch.equal(out, tokens)
    calls, fwd = [], m.forward
    m.forward = lambda *a: (calls.append(1), fwd(*a))[1]
    ModelChooser(m, y, [torch.Generator().manual_seed(i) for i in range(3)], cfg_scale=2.0, map_passes=1).step(_ctx())
    del m.forward
    assert len(calls) == 1
    with pytest.raises(ValueError, match="--map-passes"):
        ModelChooser(TokenGenerator(tiny_cfg()), y, [], map_passes=3)
    with pytest.raises(ValueError, match="map_passes"):
        TokenGenerator(tiny_cfg(map_passes=2, two_pass=True))


def test_token_history_gathers_the_chosen_vectors_of_earlier_maps():
    """token_history: example i at row r gets C_{r-k}[tokens[i, r-k, b]]_b for k = 1..H, block by block,
    and zeros where r - k < 0 (the first maps have fewer predecessors)."""
    spec = _ctx().spec                                     # init token + 2 steps: 3 rows, G = 4 blocks of Db = 12
    tokens = torch.randint(32, (3, 3, 4), generator=torch.Generator().manual_seed(1))
    out = token_history(spec, tokens, torch.tensor([0, 1, 2]), 2)
    assert out.shape == (3, 4, 24)
    cb = [spec.codebook_blocks(r, "cpu") for r in range(3)]
    expect = torch.zeros(3, 4, 24)
    for i, r in enumerate([0, 1, 2]):
        for k in (1, 2):
            if r - k >= 0:
                expect[i, :, (k - 1) * 12:k * 12] = torch.stack([cb[r - k][tokens[i, r - k, b], b] for b in range(4)])
    assert torch.equal(out, expect) and (out[0] == 0).all() and (out[1, :, 12:] == 0).all()


def test_isotropic_term_fits_the_long_entry_preference_of_dot_picks():
    """Why the isotropic term exists: ``dot`` picks of a residual with no predictable direction are
    still the *long* entries. Linear and rank-1 tied heads cannot say so; one scalar s can."""
    g = torch.Generator().manual_seed(0)
    K, D, n = 64, 8, 4000
    C = torch.randn(K, 1, D, generator=g)
    r = torch.randn(n, D, generator=g)                             # isotropic: no direction to learn
    target = torch.einsum("nd,kd->nk", r, C[:, 0]).argmax(-1)

    def fit(rank, isotropic):
        u = torch.zeros(1, 1, D, requires_grad=True)
        v = (0.1 * torch.randn(1, 1, rank, D, generator=g)).requires_grad_(True)
        s = torch.zeros(1, 1, requires_grad=True)
        opt = torch.optim.Adam([u, v, s], lr=0.05)
        for _ in range(300):
            lg = tied_logits(u, C, 1.0, "dot", v if rank else None, s if isotropic else None)
            ce = F.cross_entropy(lg[0].expand(n, K), target)
            opt.zero_grad()
            ce.backward()
            opt.step()
        return ce.item()

    without, rank1, iso = fit(0, False), fit(1, False), fit(0, True)    # measured: 4.05, 3.48, 3.28 (uniform 4.16)
    assert iso < min(without, rank1) - 0.1


class _StepCoef:
    """Just what EncodeChooser.step reads of a StepCoefficients (a re-noising step)."""
    noise_scale = 0.5


def test_training_grid_classes_bounded():
    assert train_generator.grid_classes(10).tolist() == list(range(10))
    assert train_generator.grid_classes(3).tolist() == [0, 1, 2]
    big = train_generator.grid_classes(1000)
    assert len(big) == 10 and big[0] == 0 and big[-1] == 999


def test_filter_logits_top_k_top_p():
    lg = torch.tensor([[[3.0, 2.0, 1.0, 0.0]]])
    assert torch.isinf(filter_logits(lg, top_k=2)[0, 0, 2:]).all() and torch.isfinite(filter_logits(lg, top_k=2)[0, 0, :2]).all()
    p = torch.softmax(lg, -1)[0, 0]
    out = filter_logits(lg, top_p=float(p[0]) + 1e-3)      # needs the top two to reach that mass
    assert torch.isfinite(out[0, 0, :2]).all() and torch.isinf(out[0, 0, 2:]).all()
    assert torch.equal(filter_logits(lg), lg)


def _ctx(n=0, B=3):
    spec = ChainSpec(Plan("trajectory", [(0.9, 0.5, 0.7)] * 2, [0.7, 0.0]), VirtualCodebook(0, 48), Grid((3, 4, 4), 2, 2), 32)
    return StepContext(n, spec, torch.randn(B, 3, 4, 4), torch.randn(B, 3, 4, 4), None, None, None)


def test_cfg_one_is_conditional_and_temperature_zero_is_argmax():
    torch.manual_seed(0)
    m = TokenGenerator(tiny_cfg())
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    y = torch.tensor([1, 2, 3])
    ctx = _ctx()
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(3)]  # noqa: E731
    cond = ModelChooser(m, y, gens(), cfg_scale=1.0).logits(ctx)
    feats = m(ctx.grid.to_blocks(ctx.state), ctx.grid.to_blocks(ctx.xh), torch.full((3,), 1), y)
    assert torch.allclose(cond, m.head_logits(feats, ctx.grid.entries_to_blocks(ctx.entries())), atol=1e-5)
    guided = ModelChooser(m, y, gens(), cfg_scale=3.0).logits(ctx)
    null = ModelChooser(m, torch.full((3,), 5), gens(), cfg_scale=1.0).logits(ctx)
    assert torch.allclose(guided, null + 3.0 * (cond - null), atol=1e-4)
    greedy = ModelChooser(m, y, gens(), cfg_scale=2.0, temperature=0.0).step(ctx)
    assert torch.equal(greedy, ModelChooser(m, y, gens(), cfg_scale=2.0).logits(ctx).argmax(-1))
    cold = ModelChooser(m, y, gens(), cfg_scale=2.0, temperature=1e-6).step(ctx)
    assert torch.equal(cold, greedy)
    assert cfg_scale_at(0, 5, 3.0, "linear") == 1.0 and cfg_scale_at(4, 5, 3.0, "linear") == 3.0


def test_model_table_sizes():
    cfg = dict(num_blocks=16, block_dim=192, num_rows=11, codebook_size=1024, num_classes=1000)
    sizes = {k: sum(p.numel() for p in build_generator(k, **cfg).parameters()) / 1e6 for k in ("gen-s", "gen-b")}
    assert 20 < sizes["gen-s"] < 40 and 100 < sizes["gen-b"] < 160


# ---------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def toy(tmp_path_factory, make_tiny_backbone):
    """4 procedural images of 4 classes, tokenized with cached states (2 steps, 2x2 grid, K=16)."""
    root = tmp_path_factory.mktemp("gen")
    bb = make_tiny_backbone(root / "bb")
    tok = root / "tokens"
    tokenize.run(tokenize.parse_args(["--data-path", "procedural:4", "--backbone", str(bb), "--out", str(tok),
                                      "--plan", "trajectory", "--p", "0.5", "--num-steps", "2", "--codebook-size", "16",
                                      "--grid", "2x2", "--save-states", "--batch-size", "4"]))
    return root, bb, tok


def _train(toy, run, extra=()):
    root, bb, tok = toy
    train_generator.main(["--tokens", str(tok), "--results-dir", str(root / run), "--model", "gen-tiny",
                          "--max-steps", "120", "--global-batch-size", "8", "--lr", "3e-3", "--warmup-steps", "5",
                          "--label-dropout", "0", "--log-every", "10", "--ckpt-every", "60", "--backbone", str(bb),
                          *extra])
    return root / run


def test_overfit_and_samples_decode_to_training_images(toy):
    root, bb, tok = toy
    run = _train(toy, "overfit", ["--val-tokens", str(tok)])
    assert (run / "samples" / "step_0000120.png").exists()          # class-conditional grid at the end
    val = json.loads((run / "val_metrics.json").read_text())[-1]     # the EMA export, teacher-forced on every row
    assert val["step"] == 120 and val["accuracy"] == 1.0 and val["ce"] < 0.05 < val["uniform_ce"]
    assert len(val["ce_per_row"]) == TokenDataset(tok).header.num_token_rows
    log = (run / "log.txt").read_text()
    final_ce = float([l for l in log.splitlines() if " ce " in l][-1].split(" ce ")[1].split()[0])
    assert final_ce < 0.05, log[-800:]
    data = TokenDataset(tok)
    s = sample.Sampler(str(run), device="cpu")
    imgs, tokens, _ = s.sample(np.arange(4), data.labels, cfg_scale=1.0, temperature=0.0, return_tokens=True)
    assert torch.equal(tokens, torch.from_numpy(data.tokens[:]))       # the training sequences, exactly
    ref = s.tokenizer.decode(torch.from_numpy(data.tokens[:]))
    assert torch.allclose(imgs, ref, atol=1e-5)
    # hand-off (benchmark diagnostics): the generator draws the first k steps, the finish gets that state, its
    # time and the images' classes, and its latent is what gets decoded
    from rdpm_gddcm.chain import LookupChooser, run_chain
    k, seen = 2, {}

    def finish(state, t, labels, generators):
        seen.update(state=state, t=t, labels=labels, n=len(generators))
        return torch.zeros_like(state)
    imgs_h, tokens_h, _ = s.sample(np.arange(4), data.labels, cfg_scale=1.0, temperature=0.0, return_tokens=True,
                                   hand_off=(k, finish))
    spec = s.tokenizer.spec
    assert torch.equal(tokens_h, torch.from_numpy(data.tokens[:, :spec.row_of_step(k - 1) + 1]))
    assert seen["t"] == spec.plan.steps[k - 1][2] and seen["n"] == 4
    assert torch.equal(seen["labels"].cpu(), torch.as_tensor(np.asarray(data.labels[:4])).long())
    replay = run_chain(s.tokenizer.backbone, spec, LookupChooser(tokens_h), 4,
                       seen["labels"] if s.tokenizer.cfg.conditional else None, "cpu", num_steps=k)
    assert torch.allclose(seen["state"], replay.state, atol=1e-5)
    zero = s.tokenizer.autoencoder.decode(torch.zeros_like(seen["state"]))
    assert torch.allclose(imgs_h, zero, atol=1e-6)


def test_resume_continues_same_loss_curve(toy):
    root, _, _ = toy
    fp32 = ["--mixed-precision", "no"]        # two runs compared bitwise: not `auto`, whose probe can differ per run
    full = _train(toy, "full", fp32)
    part = _train(toy, "part", ["--stop-at-step", "60", *fp32])
    assert not (part / "generator.safetensors").exists()
    _train(toy, "part", ["--resume-from-checkpoint", "latest", *fp32])
    ce = lambda d: [l.split(" ce ")[1].split()[0] for l in (d / "log.txt").read_text().splitlines() if " ce " in l]  # noqa: E731
    assert ce(full)[-6:] == ce(part)[-6:]
    from safetensors.torch import load_file
    a, b = load_file(str(full / "generator.safetensors")), load_file(str(part / "generator.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_continues_a_trained_generator_and_refuses_another(toy, tmp_path, cli_error, make_tiny_backbone):
    root, bb, tok = toy
    src = _train(toy, "init-src")
    first_ce = lambda d: float([l for l in (d / "log.txt").read_text().splitlines() if " ce " in l][0]  # noqa: E731
                               .split(" ce ")[1].split()[0])
    base = ["--tokens", tok, "--model", "gen-tiny", "--max-steps", "2", "--global-batch-size", "8",
            "--warmup-steps", "5", "--label-dropout", "0", "--log-every", "1"]
    train_generator.main([str(a) for a in base + ["--results-dir", tmp_path / "cont", "--init-from", src]])
    train_generator.main([str(a) for a in base + ["--results-dir", tmp_path / "fresh"]])
    assert first_ce(tmp_path / "cont") < 0.2 < 2.0 < first_ce(tmp_path / "fresh")    # ln 16 = 2.77 from scratch
    assert "--model" in cli_error(train_generator.main,
                                  base[:2] + ["--model", "gen-mini"] + base[4:] + ["--results-dir", tmp_path / "x",
                                                                                   "--init-from", src])
    other = tmp_path / "tok32"                                     # another tokenizer: K=32
    tokenize.run(tokenize.parse_args(["--data-path", "procedural:4", "--backbone", str(bb), "--out", str(other),
                                      "--plan", "trajectory", "--p", "0.5", "--num-steps", "2", "--codebook-size", "32",
                                      "--grid", "2x2", "--save-states", "--batch-size", "4"]))
    assert "codebook size" in cli_error(train_generator.main, ["--tokens", other] + base[2:] + [
        "--results-dir", tmp_path / "y", "--init-from", src])
    assert "nope" in cli_error(train_generator.main, base + ["--results-dir", tmp_path / "z", "--init-from", tmp_path / "nope"])
    # the same tokenizer with the backbone run at another precision: continued (only the last bits of the states differ);
    # the toy's tokens were made at `auto`, which a CPU with native bf16 may resolve to bf16: take the other one
    other_precision = "no" if TokenDataset(tok).header.backbone_dtype == "bfloat16" else "bf16"
    bf16 = tmp_path / "tok-other-precision"
    tokenize.run(tokenize.parse_args(["--data-path", "procedural:4", "--backbone", str(bb), "--out", str(bf16),
                                      "--plan", "trajectory", "--p", "0.5", "--num-steps", "2", "--codebook-size", "16",
                                      "--grid", "2x2", "--save-states", "--batch-size", "4", "--mixed-precision",
                                      other_precision]))
    assert TokenDataset(bf16).header.backbone_dtype != TokenDataset(tok).header.backbone_dtype
    train_generator.main([str(a) for a in ["--tokens", bf16] + base[2:] + ["--results-dir", tmp_path / "prec",
                                                                           "--init-from", src]])
    assert first_ce(tmp_path / "prec") < 0.2
    # the same tokenizer over another backbone of the family (a fine-tuned one): a warm start, not a refusal; its
    # header is the new tokens'
    bb2 = make_tiny_backbone(tmp_path / "bb2", seed=1)
    tok2 = tmp_path / "tok-bb2"
    tokenize.run(tokenize.parse_args(["--data-path", "procedural:4", "--backbone", str(bb2), "--out", str(tok2),
                                      "--plan", "trajectory", "--p", "0.5", "--num-steps", "2", "--codebook-size", "16",
                                      "--grid", "2x2", "--save-states", "--batch-size", "4"]))
    assert TokenDataset(tok2).header.backbone != TokenDataset(tok).header.backbone
    train_generator.main([str(a) for a in ["--tokens", tok2] + base[2:] + ["--results-dir", tmp_path / "bb2run",
                                                                           "--init-from", src]])
    assert (json.loads((tmp_path / "bb2run" / "generator.json").read_text())["tokens_header"]["backbone"]
            == TokenDataset(tok2).header.backbone)
    flow_tok = tmp_path / "tok-vp"                                  # another family: refused
    tokenize.run(tokenize.parse_args(["--data-path", "procedural:4", "--backbone",
                                      str(make_tiny_backbone(tmp_path / "bb-vp", family="vp")), "--out", str(flow_tok),
                                      "--plan", "trajectory", "--p", "0.5", "--num-steps", "2", "--codebook-size", "16",
                                      "--grid", "2x2", "--save-states", "--batch-size", "4"]))
    assert "family" in cli_error(train_generator.main, ["--tokens", flow_tok] + base[2:] + [
        "--results-dir", tmp_path / "t", "--init-from", src])
    # a generator without the isotropic head term may start one with it (same function at the start), not back
    train_generator.main([str(a) for a in base + ["--results-dir", tmp_path / "iso", "--init-from", src,
                                                  "--head-isotropic"]])
    assert first_ce(tmp_path / "iso") < 0.2
    assert json.loads((tmp_path / "iso" / "generator.json").read_text())["generator"]["head_isotropic"] is True
    assert "head_isotropic" in cli_error(train_generator.main, base + ["--results-dir", tmp_path / "w", "--init-from",
                                                                        tmp_path / "iso"])
    # the token history likewise: added at zero, not taken away
    train_generator.main([str(a) for a in base + ["--results-dir", tmp_path / "hist", "--init-from", src,
                                                  "--history-maps", "2"]])
    assert first_ce(tmp_path / "hist") < 0.2
    assert json.loads((tmp_path / "hist" / "generator.json").read_text())["generator"]["history_maps"] == 2
    assert "history_maps" in cli_error(train_generator.main, base + ["--results-dir", tmp_path / "v", "--init-from",
                                                                      tmp_path / "hist"])
    # two passes likewise
    train_generator.main([str(a) for a in base + ["--results-dir", tmp_path / "two", "--init-from", src, "--two-pass"]])
    assert first_ce(tmp_path / "two") < 0.2
    assert json.loads((tmp_path / "two" / "generator.json").read_text())["generator"]["two_pass"] is True
    assert "two_pass" in cli_error(train_generator.main, base + ["--results-dir", tmp_path / "u", "--init-from",
                                                                  tmp_path / "two"])
    assert not any((tmp_path / d).exists() for d in ("t", "u", "v", "w", "x", "y", "z"))  # refused before the run folder exists


def test_sampling_independent_of_batch_size_and_processes(toy, tmp_path):
    root, bb, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    # precision pinned: `auto` probes per thread count (1 process of 2 threads vs 2 of 1 thread)
    common = ["--ckpt", str(run), "--num-samples", "7", "--cfg-scale", "2.0", "--temperature", "1.0", "--global-seed", "3",
              "--mixed-precision", "no"]
    sample.main(common + ["--batch-size", "7", "--sample-dir", str(tmp_path / "b7")])
    sample.main(common + ["--batch-size", "1", "--sample-dir", str(tmp_path / "b1")])
    a7, a1 = np.load(tmp_path / "b7" / "samples.npz"), np.load(tmp_path / "b1" / "samples.npz")
    assert a7["arr_0"].shape == (7, 16, 16, 3) and a7["arr_0"].dtype == np.uint8
    assert np.array_equal(a7["arr_0"], a1["arr_0"]) and np.array_equal(a7["labels"], a1["labels"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    # without a GPU, --multi_gpu starts 2 torchrun processes that run as MULTI_CPU (--cpu would start one)
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                        "-m", "rdpm_gddcm.sample", *common, "--batch-size", "2", "--sample-dir", str(tmp_path / "p2")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "p2" / "sample_config.json").read_text())["num_processes"] == 2
    assert np.array_equal(np.load(tmp_path / "p2" / "samples.npz")["arr_0"], a7["arr_0"])
    cfg = json.loads((tmp_path / "b7" / "sample_config.json").read_text())
    assert cfg["cfg_scale"] == 2.0 and (tmp_path / "b7" / "grid.png").exists() and (tmp_path / "b7" / "000006.png").exists()


def test_sampling_resumes_and_refuses_other_settings(toy, tmp_path, cli_error, monkeypatch):
    """An interrupted or extended run gives the same samples as one uninterrupted run; a re-run
    with other settings is refused instead of mixing two runs in one directory."""
    root, bb, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    # fp32: only there are resumed images (other batches) bit-identical (rdpm-sample's docstring); "auto" may pick
    # bf16 autocast on a CPU with bf16 instructions
    common = ["--ckpt", str(run), "--cfg-scale", "2.0", "--temperature", "1.0", "--global-seed", "5", "--batch-size", "3",
              "--mixed-precision", "no"]
    sample.main(common + ["--num-samples", "6", "--sample-dir", str(tmp_path / "full")])
    part = tmp_path / "part"
    sample.main(common + ["--num-samples", "4", "--sample-dir", str(part)])
    (part / "000001.png").unlink()                                   # as if interrupted before image 1 was written
    recorded = json.loads((part / "sample_settings.json").read_text())
    del recorded["min_norm_maps"]                                    # written before that knob existed: its default
    (part / "sample_settings.json").write_text(json.dumps(recorded))
    monkeypatch.chdir(run.parent)                                    # the same generator by a relative path resumes
    sample.main(["--ckpt", run.name, *common[2:], "--num-samples", "6", "--sample-dir", str(part)])
    assert (part / "000001.png").exists()
    assert "6 or more" in cli_error(sample.main, common + ["--num-samples", "5", "--sample-dir", str(part)])
    cfg = json.loads((part / "sample_config.json").read_text())
    assert cfg["kept_from_earlier_runs"] == 3 and cfg["sampled_this_run"] == 3
    assert np.array_equal(np.load(part / "samples.npz")["arr_0"], np.load(tmp_path / "full" / "samples.npz")["arr_0"])
    err = cli_error(sample.main, [a if a != "2.0" else "1.5" for a in common] + ["--num-samples", "6", "--sample-dir",
                                                                                  str(part)])
    assert re.search(r"cfg_scale: 2\.0 -> 1\.5", err)
    (part / "sample_settings.json").unlink()
    assert "no sample_settings.json" in cli_error(sample.main, common + ["--num-samples", "6", "--sample-dir", str(part)])


def test_sampling_defaults_come_from_the_checkpoint(toy, tmp_path, cli_error):
    """rdpm-sample's knobs default to the setting the checkpoint records (generator.json "sampling",
    what a shipped generator was tuned to), a flag overrides it, and a broken record is one clear error."""
    import shutil
    root, bb, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run, ckpt, ignore=shutil.ignore_patterns("checkpoints", "samples"))
    common = ["--ckpt", str(ckpt), "--num-samples", "2", "--mixed-precision", "no"]
    settings = lambda d: json.loads((d / "sample_settings.json").read_text())  # noqa: E731
    sample.main(common + ["--sample-dir", str(tmp_path / "lib")])
    lib = settings(tmp_path / "lib")
    assert {k: lib[k] for k in sample.SAMPLING_DEFAULTS} == sample.SAMPLING_DEFAULTS
    meta = json.loads((ckpt / "generator.json").read_text())
    meta["sampling"] = {"cfg_scale": 3.0, "temperature": 0.5, "top_k": 4, "tuned_by": "a test"}
    (ckpt / "generator.json").write_text(json.dumps(meta))
    sample.main(common + ["--sample-dir", str(tmp_path / "rec")])
    rec = settings(tmp_path / "rec")
    assert (rec["cfg_scale"], rec["temperature"], rec["top_k"], rec["top_p"]) == (3.0, 0.5, 4, 1.0)
    sample.main(common + ["--cfg-scale", "1.0", "--sample-dir", str(tmp_path / "flag")])
    assert (settings(tmp_path / "flag")["cfg_scale"], settings(tmp_path / "flag")["temperature"]) == (1.0, 0.5)
    s = sample.Sampler(str(ckpt))                  # the Python API uses the record too
    a, _ = s.sample([0, 1], [0, 1], global_seed=0)
    b, _ = s.sample([0, 1], [0, 1], cfg_scale=3.0, temperature=0.5, top_k=4, top_p=1.0, global_seed=0)
    assert torch.equal(a, b)
    meta["sampling"]["temperature"] = -1
    (ckpt / "generator.json").write_text(json.dumps(meta))
    err = cli_error(sample.main, common + ["--sample-dir", str(tmp_path / "bad")])
    assert "generator.json" in err and "temperature" in err and not (tmp_path / "bad").exists()


@pytest.mark.gpu
def test_cuda_sampling_independent_of_batch_size(toy, tmp_path):
    """On CUDA the Gumbel noise comes from per-image device generators: still one stream per image."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    root, bb, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    common = ["--ckpt", str(run), "--num-samples", "7", "--cfg-scale", "2.0", "--global-seed", "3", "--device", "cuda"]
    sample.main(common + ["--batch-size", "7", "--sample-dir", str(tmp_path / "b7")])
    sample.main(common + ["--batch-size", "2", "--sample-dir", str(tmp_path / "b2")])
    assert np.array_equal(np.load(tmp_path / "b7" / "samples.npz")["arr_0"], np.load(tmp_path / "b2" / "samples.npz")["arr_0"])


def test_training_without_states_replays_them(toy, tmp_path):
    root, bb, tok = toy
    bare = tmp_path / "bare"
    tokenize.run(tokenize.parse_args(["--data-path", "procedural:4", "--backbone", str(bb), "--out", str(bare),
                                      "--plan", "trajectory", "--p", "0.5", "--num-steps", "2", "--codebook-size", "16",
                                      "--grid", "2x2", "--batch-size", "4"]))
    with_states = TokenDataset(tok)
    from rdpm_gddcm.tokenizer import Tokenizer, load_models
    b, ae, _ = load_models(str(bb), None, None)
    batcher = train_generator.RowBatcher(TokenDataset(bare), Tokenizer.from_header(with_states.header, b, ae))
    cached = train_generator.RowBatcher(with_states)
    idx, rows = np.array([0, 3, 2]), np.array([0, 1, 2])
    for x, y in zip(batcher.inputs(idx, rows, "cpu"), cached.inputs(idx, rows, "cpu")):
        assert torch.allclose(x.float(), y.float(), atol=2e-3)          # cached states are fp16
    with pytest.raises(ValueError, match="--backbone"):
        train_generator.RowBatcher(TokenDataset(bare))


def test_replay_uses_class_labels_for_conditional_tokens(toy, tmp_path):
    """Tokens made with --conditional called the backbone with each image's class: replaying their states
    must do the same (the cached states are the reference)."""
    root, bb, _ = toy
    args = ["--data-path", "procedural:4", "--backbone", str(bb), "--plan", "trajectory", "--p", "0.5", "--num-steps",
            "2", "--codebook-size", "16", "--grid", "2x2", "--batch-size", "4", "--conditional"]
    tokenize.run(tokenize.parse_args(args + ["--out", str(tmp_path / "cached"), "--save-states"]))
    tokenize.run(tokenize.parse_args(args + ["--out", str(tmp_path / "bare")]))
    from rdpm_gddcm.tokenizer import Tokenizer, load_models
    cached = TokenDataset(tmp_path / "cached")
    b, ae, _ = load_models(str(bb), None, None)
    replay = train_generator.RowBatcher(TokenDataset(tmp_path / "bare"), Tokenizer.from_header(cached.header, b, ae))
    idx, rows = np.array([1, 2, 3]), np.array([1, 2, 2])
    for x, y in zip(replay.inputs(idx, rows, "cpu"), train_generator.RowBatcher(cached).inputs(idx, rows, "cpu")):
        assert torch.allclose(x.float(), y.float(), atol=2e-3)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_gumbel_max_sampler_draws_from_the_softmax(tau):
    """ModelChooser.choose is Gumbel-max: argmax(l/τ + G) ~ softmax(l/τ). Chi-square over 6000 draws
    (one image, 6000 blocks with the same logits); a wrong sign or scale fails it by a wide margin."""
    from scipy import stats
    K, G = 6, 6000
    lg = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -2.0])
    chooser = ModelChooser(TokenGenerator(tiny_cfg()), torch.tensor([0]), [torch.Generator().manual_seed(7)],
                           temperature=tau)
    chooser.logits = lambda ctx: lg.expand(1, G, K)
    picks = chooser.choose(None)[0]
    counts = torch.bincount(picks, minlength=K).numpy()
    expected = torch.softmax(lg.double() / tau, 0).numpy() * G
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    inverted = torch.softmax(-lg.double() / tau, 0).numpy() * G
    assert stats.chisquare(counts, inverted).pvalue < 1e-12                  # a sign error would be caught


def _benchmark_script(name: str):
    """A script under benchmarks/ loaded as a module (they are scripts, not a package)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_for_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_binding_a_generator_to_a_fine_tuned_backbone(toy, tmp_path, make_tiny_backbone):
    """generator_card.py --retune --backbone-asset: a generator is re-bound to another backbone only with tokens of
    the same tokenizer made by that backbone; its generator.json then names them, and it samples with it."""
    card = _benchmark_script("generator_card")
    root, bb, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    meta = json.loads((run / "generator.json").read_text())
    bb2 = make_tiny_backbone(tmp_path / "bb2", seed=1)                 # "fine-tuned": other weights, same family
    flags = ["--plan", "trajectory", "--p", "0.5", "--num-steps", "2", "--grid", "2x2", "--save-states", "--batch-size", "4"]
    tok2, tok32 = tmp_path / "tok-bb2", tmp_path / "tok-bb2-k32"
    for out, k in ((tok2, "16"), (tok32, "32")):
        tokenize.run(tokenize.parse_args(["--data-path", "procedural:4", "--backbone", str(bb2), "--out", str(out),
                                          "--codebook-size", k, *flags]))
    bound = card.bound_meta(meta, tok2, bb2, str(bb2))
    assert bound["tokens_header"] == json.loads((tok2 / "tokenizer_config.json").read_text())["header"]
    assert bound["backbone"] == str(bb2) and bound["generator"] == meta["generator"]
    with pytest.raises(SystemExit, match="codebook size"):                      # another tokenizer
        card.bound_meta(meta, tok32, bb2, str(bb2))
    with pytest.raises(SystemExit, match="not the backbone"):                  # tokens of bb2, weights of bb
        card.bound_meta(meta, tok2, bb, str(bb))
    with pytest.raises(SystemExit, match="tokenizer_config.json"):
        card.bound_meta(meta, tmp_path / "nope", bb2, str(bb2))
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "generator.safetensors").write_bytes((run / "generator.safetensors").read_bytes())
    (gen / "generator.json").write_text(json.dumps(bound))
    s = sample.Sampler(str(gen), mixed_precision="no")
    assert s.tokenizer.backbone.weights_hash() == bound["tokens_header"]["backbone"]["sha256"]
    imgs, _ = s.sample(np.arange(2), np.arange(2))
    assert torch.isfinite(imgs).all()


def test_diagnostics_recombined_tokens_keep_row_and_block(toy):
    """bench_generator's diagnostics draw other images' stored tokens whole, one image per map or one per
    token: every token stays at its own row and block (the codebook it indexes) and is a stored token there."""
    import argparse
    bench = _benchmark_script("bench_generator")
    _, _, tok = toy
    data = TokenDataset(tok)
    stored = data.tokens[:]                                            # (M, R, G)
    a = argparse.Namespace(tokens=str(tok))
    labels = np.array([0, 1, 2, 3])
    for mode in bench.TRUE_FROM[1:]:
        got, got_labels = bench.train_token_rows(a, labels, mode)
        assert got.shape == (len(labels),) + stored.shape[1:] and len(got_labels) == len(labels)
        again, _ = bench.train_token_rows(a, labels, mode)
        assert np.array_equal(got, again)                              # a fixed draw
        for i in range(len(labels)):
            if mode == "other images, one per token":                  # each (row, block) some image's token there
                assert ((stored == got[i][None]).any(0)).all()
            elif mode == "other images, one per map":                  # each map some image's whole map
                assert all((stored[:, m] == got[i, m][None]).all(-1).any() for m in range(stored.shape[1]))
            else:                                                      # the whole sequence of one image
                assert (stored == got[i][None]).all((1, 2)).any()
    with pytest.raises(SystemExit, match="true_from"):
        bench.train_token_rows(a, labels, "nonsense")


def test_min_norm_maps_take_each_blocks_shortest_entry(toy, tmp_path, cli_error):
    """--min-norm-maps M: the last M token maps are each block's shortest codebook entry (the same for every
    image), the earlier maps are sampled exactly as without it; M beyond the maps is one clear error."""
    from rdpm_gddcm.generator import min_norm_entries
    root, bb, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    s = sample.Sampler(str(run))
    R = s.model.cfg.num_rows
    idx, labels = np.arange(4), np.arange(4) % 4
    _, plain, _ = s.sample(idx, labels, cfg_scale=2.0, temperature=1.0, global_seed=5, return_tokens=True)
    for M in (1, R):
        _, got, _ = s.sample(idx, labels, cfg_scale=2.0, temperature=1.0, global_seed=5, return_tokens=True,
                             min_norm_maps=M)
        assert torch.equal(got[:, :R - M], plain[:, :R - M])
        for m in range(R - M, R):
            cb = s.tokenizer.spec.codebook_blocks(m, "cpu")                      # (K, G, Db)
            norms = cb.square().sum(-1)                                          # (K, G)
            assert torch.equal(got[:, m], min_norm_entries(cb).expand(len(idx), -1))
            assert (norms.gather(0, got[:1, m]) <= norms.min(0).values + 1e-6).all()
    err = cli_error(sample.main, ["--ckpt", str(run), "--num-samples", "2", "--min-norm-maps", str(R + 1),
                                  "--sample-dir", str(tmp_path / "bad")])
    assert "--min-norm-maps" in err and not (tmp_path / "bad").exists()


def test_norm_bias_favours_short_entries_and_the_guidance_interval_guides_only_its_maps(toy, tmp_path, cli_error):
    """--norm-bias β subtracts β·½‖C_k‖² from a chain-step map's logits (never the init map's); a large β makes the
    greedy pick each block's shortest entry. --cfg-schedule interval:A-B guides rows A..B only. Both are recorded
    like the other knobs; a nonsense value is one clear error with nothing written."""
    from rdpm_gddcm.generator import min_norm_entries
    torch.manual_seed(0)
    m = TokenGenerator(tiny_cfg())
    for q in m.parameters():
        torch.nn.init.normal_(q, std=0.1)
    y = torch.tensor([1, 2, 3])
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(3)]  # noqa: E731
    for n in (-1, 0):
        ctx = _ctx(n)
        row = ctx.spec.row_of_step(n)
        plain = ModelChooser(m, y, gens(), cfg_scale=2.0).logits(ctx)
        biased = ModelChooser(m, y, gens(), cfg_scale=2.0, norm_bias=0.3).logits(ctx)
        sq = ctx.spec.codebook_blocks(row, "cpu").square().sum(-1).T                 # (G, K)
        want = plain if n < 0 else plain - 0.15 * sq
        assert torch.allclose(biased, want, atol=1e-4)
        longer = ModelChooser(m, y, gens(), cfg_scale=2.0, norm_bias=-0.3).logits(ctx)     # β < 0: longer entries
        assert torch.allclose(longer, plain if n < 0 else plain + 0.15 * sq, atol=1e-4)
        if n >= 0:
            greedy = ModelChooser(m, y, gens(), temperature=0.0, norm_bias=1e4).step(ctx)
            assert torch.equal(greedy, min_norm_entries(ctx.spec.codebook_blocks(row, "cpu")).expand(3, -1))
    with pytest.raises(ValueError, match="norm_bias"):
        ModelChooser(m, y, gens(), norm_bias=float("nan"))
    assert [cfg_scale_at(n, 5, 3.0, "interval:1-2") for n in range(5)] == [1.0, 3.0, 3.0, 1.0, 1.0]
    ctx = _ctx(0)                                                                    # row 1 of this spec
    unguided = ModelChooser(m, y, gens(), cfg_scale=1.0).logits(ctx)
    assert torch.equal(ModelChooser(m, y, gens(), cfg_scale=3.0, cfg_schedule="interval:2-4").logits(ctx), unguided)
    assert torch.allclose(ModelChooser(m, y, gens(), cfg_scale=3.0, cfg_schedule="interval:0-1").logits(ctx),
                          ModelChooser(m, y, gens(), cfg_scale=3.0).logits(ctx))
    for bad in ("interval:3-1", "interval:1", "cosine"):
        with pytest.raises(ValueError, match="interval:A-B"):
            cfg_scale_at(0, 5, 2.0, bad)
    # the command line: recorded, resumed, refused
    root, bb, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    common = ["--ckpt", str(run), "--num-samples", "2", "--mixed-precision", "no"]
    sample.main(common + ["--norm-bias", "0.5", "--cfg-schedule", "interval:1-3", "--sample-dir", str(tmp_path / "ok")])
    rec = json.loads((tmp_path / "ok" / "sample_settings.json").read_text())
    assert (rec["norm_bias"], rec["cfg_schedule"]) == (0.5, "interval:1-3")
    err = cli_error(sample.main, common + ["--norm-bias", "0.25", "--cfg-schedule", "interval:1-3", "--sample-dir",
                                           str(tmp_path / "ok")])
    assert "norm_bias: 0.5 -> 0.25" in err
    for flag, value in (("--norm-bias", "inf"), ("--norm-bias", "nan"), ("--cfg-schedule", "interval:5-2")):
        err = cli_error(sample.main, common + [flag, value, "--sample-dir", str(tmp_path / "bad")])
        assert flag in err and not (tmp_path / "bad").exists()


def test_backbone_guidance_guides_the_chains_backbone(toy, tmp_path, cli_error):
    """--backbone-cfg-scale w_b: the chain's backbone calls (and the final ODE) run classifier-free guided, i.e.
    also with the null class, and change the images; w_b = 1 is the unguided chain itself; it is recorded like
    the other knobs; tokens made without the class cannot be guided: one clear error, nothing written."""
    root, bb, tok = toy
    cond = tmp_path / "cond"
    tokenize.run(tokenize.parse_args(["--data-path", "procedural:4", "--backbone", str(bb), "--out", str(cond), "--plan",
                                      "trajectory", "--p", "0.5", "--num-steps", "2", "--codebook-size", "16", "--grid",
                                      "2x2", "--save-states", "--batch-size", "4", "--conditional"]))
    run = tmp_path / "gen"
    train_generator.main(["--tokens", str(cond), "--results-dir", str(run), "--model", "gen-tiny", "--max-steps", "4",
                          "--global-batch-size", "4", "--warmup-steps", "1", "--log-every", "2", "--ckpt-every", "4",
                          "--sample-every", "0", "--backbone", str(bb)])
    s = sample.Sampler(str(run), mixed_precision="no")
    inner = s.tokenizer.backbone
    seen, null = [], inner.null_class
    real_predict = inner._predict

    def predict(x, t, y):                 # records the labels; a class shifts x̂0 (the random tiny net's barely does)
        seen.append(y.clone())
        xh, eh = real_predict(x, t, y)
        return xh + 0.05 * (y != null).float().view(-1, 1, 1, 1), eh
    inner._predict = predict
    idx, labels = np.arange(4), np.arange(4) % 4
    kw = dict(cfg_scale=1.0, temperature=1.0, global_seed=3, return_tokens=True)
    plain, plain_tokens, _ = s.sample(idx, labels, **kw)
    assert seen and all(not (y == null).any() for y in seen)
    seen.clear()
    same, same_tokens, _ = s.sample(idx, labels, backbone_cfg_scale=1.0, **kw)
    assert torch.equal(same, plain) and torch.equal(same_tokens, plain_tokens)
    seen.clear()
    guided, _, _ = s.sample(idx, labels, backbone_cfg_scale=3.0, **kw)
    # every call (chain steps and final ODE) sees each image's class and the null class
    assert seen and all(sorted(y.tolist()) == sorted(labels.tolist() + [null] * 4) for y in seen)
    assert (guided - plain).abs().max() > 0.05
    out = tmp_path / "rec"
    sample.main(["--ckpt", str(run), "--num-samples", "2", "--backbone-cfg-scale", "3", "--sample-dir", str(out)])
    assert json.loads((out / "sample_settings.json").read_text())["backbone_cfg_scale"] == 3.0
    unconditional = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    err = cli_error(sample.main, ["--ckpt", str(unconditional), "--num-samples", "2", "--backbone-cfg-scale", "2",
                                  "--sample-dir", str(tmp_path / "bad")])
    assert "--backbone-cfg-scale" in err and "--conditional" in err and not (tmp_path / "bad").exists()


def test_two_pass_generator_trains_on_shown_halves_and_reproduces_its_data(toy):
    """A --two-pass generator: training shows no block or one checkerboard half of the true map (a function
    of seed and step, about half the examples each), scores the rest; validation reports both passes; the
    overfit model samples its training sequences greedily through both passes."""
    root, bb, tok = toy
    grid = Grid((4, 2, 2), 2, 2)
    shown = train_generator.shown_halves(grid, 4000, torch.Generator().manual_seed(0))
    halves = torch.stack([checkerboard(grid, 0), checkerboard(grid, 1)])
    assert all(not r.any() or any(torch.equal(r, h) for h in halves) for r in shown)
    assert 0.45 < shown.any(-1).float().mean() < 0.55 and 0.45 < shown[shown.any(-1), 0].float().mean() < 0.55
    assert torch.equal(shown, train_generator.shown_halves(grid, 4000, torch.Generator().manual_seed(0)))
    run = _train(toy, "two-pass", ["--two-pass", "--val-tokens", str(tok)])
    val = json.loads((run / "val_metrics.json").read_text())[-1]
    assert val["accuracy"] == 1.0 and val["accuracy_second_pass"] == 1.0 and val["ce_second_pass"] < 0.05
    assert len(val["ce_second_pass_per_row"]) == TokenDataset(tok).header.num_token_rows
    data = TokenDataset(tok)
    s = sample.Sampler(str(run), device="cpu")
    assert s.model.cfg.two_pass
    _, tokens, _ = s.sample(np.arange(4), data.labels, cfg_scale=1.0, temperature=0.0, return_tokens=True)
    assert torch.equal(tokens, torch.from_numpy(data.tokens[:]))


def test_masked_pass_generator_trains_and_reproduces_its_data_in_any_number_of_passes(toy, tmp_path, cli_error):
    """A --map-passes generator: it records P, validation reports the given-half pass, the overfit model
    samples its training sequences greedily in P passes (its default) and in one; --init-from a plain
    generator adds the input; rdpm-sample refuses more passes than a plain generator was trained for, before
    writing anything."""
    root, bb, tok = toy
    run = _train(toy, "masked", ["--map-passes", "3", "--val-tokens", str(tok)])
    val = json.loads((run / "val_metrics.json").read_text())[-1]
    assert val["accuracy"] == 1.0 and val["accuracy_second_pass"] == 1.0
    data = TokenDataset(tok)
    s = sample.Sampler(str(run), device="cpu")
    assert s.model.cfg.map_passes == 3 and s.defaults["map_passes"] == 0
    for passes in (None, 1):
        _, tokens, _ = s.sample(np.arange(4), data.labels, cfg_scale=1.0, temperature=0.0, return_tokens=True,
                                map_passes=passes)
        assert torch.equal(tokens, torch.from_numpy(data.tokens[:]))
    plain = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    train_generator.main([str(a) for a in ["--tokens", tok, "--model", "gen-tiny", "--max-steps", "2",
                                           "--global-batch-size", "8", "--results-dir", tmp_path / "added",
                                           "--init-from", plain, "--map-passes", "3"]])
    assert json.loads((tmp_path / "added" / "generator.json").read_text())["generator"]["map_passes"] == 3
    err = cli_error(sample.main, ["--ckpt", str(plain), "--num-samples", "2", "--map-passes", "3",
                                  "--sample-dir", str(tmp_path / "bad")])
    assert "--map-passes" in err and not (tmp_path / "bad").exists()
    out = tmp_path / "three"
    sample.main(["--ckpt", str(run), "--num-samples", "2", "--map-passes", "3", "--sample-dir", str(out)])
    assert json.loads((out / "sample_settings.json").read_text())["map_passes"] == 3


def test_history_generator_sees_in_sampling_the_history_it_was_trained_on(toy):
    """A --history-maps generator: teacher-forced training and validation read the history from the stored
    tokens; sampling reads it from the chain's earlier choices. Replaying stored tokens through the sampler's
    chain, the history the model is given at each row (both CFG halves) is exactly the training input, and
    the overfit model reproduces its training sequences greedily."""
    from rdpm_gddcm.chain import LookupChooser
    root, bb, tok = toy
    run = _train(toy, "history", ["--history-maps", "2", "--val-tokens", str(tok)])
    val = json.loads((run / "val_metrics.json").read_text())[-1]
    assert val["accuracy"] == 1.0 and val["ce"] < 0.05
    data = TokenDataset(tok)
    s = sample.Sampler(str(run), device="cpu")
    assert s.model.cfg.history_maps == 2
    _, tokens, _ = s.sample(np.arange(4), data.labels, cfg_scale=1.0, temperature=0.0, return_tokens=True)
    assert torch.equal(tokens, torch.from_numpy(data.tokens[:]))

    seen, forward = [], s.model.forward
    s.model.forward = lambda *a: (seen.append((a[2].clone(), a[4] if len(a) > 4 else None)), forward(*a))[1]
    stored = torch.from_numpy(data.tokens[:])
    replay = lambda mc: type("Replay", (), {  # noqa: E731
        "init": lambda self, ctx: (mc.logits(ctx), LookupChooser(stored).init(ctx))[1],
        "step": lambda self, ctx: (mc.logits(ctx), LookupChooser(stored).step(ctx))[1]})()
    s.sample(np.arange(4), data.labels, cfg_scale=2.0, temperature=1.0, wrap_chooser=replay)
    batcher = train_generator.RowBatcher(data)
    assert [int(r[0]) for r, _ in seen] == list(range(data.header.num_token_rows))
    for r, h in seen:
        row = int(r[0])
        want = batcher.history(np.arange(4), np.full(4, row), 2, "cpu")
        if row == 0:
            assert h is None and (want == 0).all()                 # no earlier maps: the layer's bias alone
        else:
            assert torch.equal(h, torch.cat([want, want]))          # conditional and null-class halves


def test_run_state_continues_a_generator_run_elsewhere(toy, tmp_path):
    """--run-state for the generator: the first leg stops and packs its checkpoint (every process's RNG
    state), the run folder is lost, the same command resumes from the packed state and ends where the
    uninterrupted run ends, up to the bf16 rounding of Adam's moments."""
    import shutil

    from safetensors.torch import load_file

    from rdpm_gddcm.training import pack_run_state, unpack_run_state
    root, bb, tok = toy
    base = ["--tokens", str(tok), "--model", "gen-tiny", "--max-steps", "4", "--global-batch-size", "8",
            "--warmup-steps", "1", "--label-dropout", "0", "--log-every", "1", "--ckpt-every", "2",
            "--mixed-precision", "no"]
    state, whole, legs = tmp_path / "state", tmp_path / "whole", tmp_path / "legs"
    train_generator.main(base + ["--results-dir", str(whole)])
    train_generator.main(base + ["--results-dir", str(legs), "--run-state", str(state), "--stop-at-step", "2"])
    assert json.loads((state / "run_state.json").read_text())["trainer_state"]["step"] == 2
    shutil.rmtree(legs)
    train_generator.main(base + ["--results-dir", str(legs), "--run-state", str(state)])
    assert "resumed from" in (legs / "log.txt").read_text()
    assert json.loads((state / "run_state.json").read_text())["trainer_state"]["step"] == 4
    a, b = load_file(str(whole / "generator.safetensors")), load_file(str(legs / "generator.safetensors"))
    assert set(a) == set(b)
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 2e-3, worst
    # a checkpoint of two processes: both RNG states travel (each process resumes its own stream)
    ck = sorted((whole / "checkpoints").iterdir())[-1]
    shutil.copyfile(ck / "random_states_0.pkl", ck / "random_states_1.pkl")
    rng1 = torch.load(ck / "random_states_1.pkl", weights_only=False)
    rng1["which_process"] = 1                                      # tell the two apart
    torch.save(rng1, ck / "random_states_1.pkl")
    out = unpack_run_state(pack_run_state(whole, tmp_path / "two"), tmp_path / "elsewhere")
    assert sorted(p.name for p in out.glob("random_states_*.pkl")) == ["random_states_0.pkl", "random_states_1.pkl"]
    assert torch.load(out / "random_states_1.pkl", weights_only=False)["which_process"] == 1
    assert "which_process" not in torch.load(out / "random_states_0.pkl", weights_only=False)


def test_diagnostics_row_mix_replays_its_rows_and_leaves_the_others_to_the_generator(toy):
    """bench_generator's RowMixChooser (diagnostics rows 15-16: the middle maps from one real image): the stored
    tokens in its rows, exactly the generator's choices before them, and the minimum-norm maps after them still
    minimum-norm."""
    from rdpm_gddcm.generator import min_norm_entries
    bench = _benchmark_script("bench_generator")
    root, _, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    s = sample.Sampler(str(run))
    R = s.model.cfg.num_rows
    assert R >= 3
    idx, labels = np.arange(3), np.arange(3) % 4
    mid = [R - 2]                                                        # one replayed map, the last one minimum-norm
    kw = dict(cfg_scale=2.0, temperature=1.0, global_seed=3, return_tokens=True, min_norm_maps=1)
    _, plain, _ = s.sample(idx, labels, **kw)
    # stored tokens the generator would not pick itself (an overfit generator may reproduce the real ones)
    stored = (torch.from_numpy(np.asarray(TokenDataset(tok).tokens[:3])).long() + 1) % s.tokenizer.cfg.codebook_size
    assert not torch.equal(plain[:, mid], stored[:, mid])
    _, got, _ = s.sample(idx, labels, wrap_chooser=lambda mc: bench.RowMixChooser(mc, stored, mid), **kw)
    assert torch.equal(got[:, mid], stored[:, mid])
    assert torch.equal(got[:, :mid[0]], plain[:, :mid[0]])              # same seeds: the same picks before the mix
    cb = s.tokenizer.spec.codebook_blocks(R - 1, "cpu")
    assert torch.equal(got[:, R - 1], min_norm_entries(cb).expand(len(idx), -1))


def test_token_coherence_measures_agreement_beyond_class_and_position():
    """bench_token_coherence.py: independent random directions score ~0 within a map and across maps; one
    direction per image shared by its blocks scores high within the map and, repeated in the next map, across
    maps; a direction shared by a whole class (or a fixed block position) is not counted (the partner image is
    another image of the same class)."""
    bc = _benchmark_script("bench_token_coherence")
    labels = np.arange(40) % 4
    partner = bc.within_class_partner(labels)
    assert (labels[partner] == labels).all() and (partner != np.arange(40)).all()
    g = torch.Generator().manual_seed(0)
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    rand = unit(torch.randn(40, 2, 16, 8, generator=g))                       # (N, R, G, Db), a 4x4 grid
    c = bc.coherence(rand, labels, 4, 4)
    assert max(abs(v) for v in c["neighbour"] + c["next_map"]) < 0.05
    per_image = unit(torch.randn(40, 1, 1, 8, generator=g) + 0.3 * torch.randn(40, 2, 16, 8, generator=g))
    c = bc.coherence(per_image, labels, 4, 4)
    assert min(c["neighbour"]) > 0.5 and c["next_map"][0] > 0.5
    per_class = unit(torch.randn(4, 1, 1, 8, generator=g)[labels] + 0.3 * torch.randn(40, 2, 16, 8, generator=g))
    per_position = unit(torch.randn(1, 1, 16, 8, generator=g) + 0.3 * torch.randn(40, 2, 16, 8, generator=g))
    for shared in (per_class, per_position):
        c = bc.coherence(shared, labels, 4, 4)
        assert max(abs(v) for v in c["neighbour"]) < 0.05


def test_init_prior_draws_the_init_map_jointly_by_the_encoders_rule(toy, tmp_path, cli_error):
    """rdpm-fit-init-prior writes a Gaussian prior into a generator directory; with --init-prior gaussian the
    init map is the encoder's Eq. 15 choice for the prior's latent, drawn from each image's own generator (so
    independent of the batch), and the later maps are the generator's. Without a prior the option is one clear
    error; a prior is not overwritten without --force."""
    import shutil

    from rdpm_gddcm import init_prior
    from rdpm_gddcm.sample import image_generator
    root, bb, tok = toy
    run = root / "overfit" if (root / "overfit" / "generator.json").exists() else _train(toy, "overfit")
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run, ckpt, ignore=shutil.ignore_patterns("checkpoints", "samples"))
    common = ["--ckpt", str(ckpt), "--num-samples", "3", "--mixed-precision", "no"]
    err = cli_error(sample.main, common + ["--init-prior", "gaussian", "--sample-dir", str(tmp_path / "none")])
    assert "init prior" in err and "rdpm-fit-init-prior" in err and not (tmp_path / "none").exists()
    fit = ["--ckpt", str(ckpt), "--data-path", "procedural:40", "--rank", "3", "--batch-size", "16"]
    init_prior.main(fit)
    prior_file = ckpt / init_prior.PRIOR_FILE
    before = prior_file.read_bytes()
    err = cli_error(init_prior.main, fit)
    assert "--force" in err and prior_file.read_bytes() == before

    s = sample.Sampler(str(ckpt))
    spec = s.tokenizer.spec
    idx, labels = np.arange(3), np.array([0, 1, 3])
    _, got, _ = s.sample(idx, labels, cfg_scale=2.0, global_seed=5, return_tokens=True, init_prior="gaussian",
                         init_prior_guidance=1.5)
    x = s.init_prior.sample(torch.as_tensor(labels), [image_generator(5, int(i)) for i in idx], 1.5, 1.0)
    scores = torch.einsum("bgd,kgd->bgk", spec.grid.to_blocks(x), spec.codebook_blocks(0, "cpu"))
    picked = scores.gather(-1, got[:, 0].unsqueeze(-1)).squeeze(-1)
    assert (picked >= scores.max(-1).values - 1e-4 * scores.abs().max()).all()      # the argmax, up to float ties
    _, alone, _ = s.sample(idx[2:], labels[2:], cfg_scale=2.0, global_seed=5, return_tokens=True,
                           init_prior="gaussian", init_prior_guidance=1.5)
    assert torch.equal(alone, got[2:])                                              # per-image streams
    sample.main(common + ["--init-prior", "gaussian", "--sample-dir", str(tmp_path / "prior")])
    rec = json.loads((tmp_path / "prior" / "sample_settings.json").read_text())
    assert rec["init_prior"] == "gaussian" and rec["init_prior_sha256"]
