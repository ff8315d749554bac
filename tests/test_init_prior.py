"""The Gaussian init-map prior (init_prior.py): fit, guidance, per-image seeding, save/load."""
import math

import pytest
import torch

from rdpm_gddcm.init_prior import PRIOR_FILE, GaussianInitPrior


def _latents(n_per_class=3000, seed=0):
    """Two classes of (2, 2, 2) latents: class means ±1 along a fixed direction, covariance A Aᵀ + 0.2² I."""
    g = torch.Generator().manual_seed(seed)
    D = 8
    A = torch.randn(D, 2, generator=g)
    mu = torch.stack([torch.ones(D), -torch.ones(D)]) + 0.5 * torch.randn(2, D, generator=g)
    xs, ys = [], []
    for y in range(2):
        z = torch.randn(n_per_class, 2, generator=g)
        e = 0.2 * torch.randn(n_per_class, D, generator=g)
        xs.append(mu[y] + z @ A.T + e)
        ys.append(torch.full((n_per_class,), y))
    cov = A @ A.T + 0.04 * torch.eye(D)
    return torch.cat(xs).view(-1, 2, 2, 2), torch.cat(ys), mu, cov


def _model_cov(p, y):
    D = p.means.shape[1]
    return p.factors[y].T @ p.factors[y] + p.residual_std[y] ** 2 * torch.eye(D)


def test_fit_recovers_each_class_mean_and_covariance():
    x, y, mu, cov = _latents()
    p = GaussianInitPrior.fit(x, y, num_classes=2, rank=2)      # the true rank: the rest is the isotropic part
    for c in range(2):
        assert torch.allclose(p.means[c], mu[c], atol=0.1)
        assert (_model_cov(p, c) - cov).norm() / cov.norm() < 0.1
    # total variance is kept whatever the rank: the dropped directions go to the isotropic part
    for r in (1, 5):
        q = GaussianInitPrior.fit(x, y, num_classes=2, rank=r)
        assert math.isclose(float(_model_cov(q, 0).trace()), float(_model_cov(p, 0).trace()), rel_tol=1e-4)


def test_samples_follow_the_fitted_gaussian_with_guidance_and_scale():
    x, y, mu, cov = _latents()
    p = GaussianInitPrior.fit(x, y, num_classes=2, rank=2)
    n = 4000
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    s = p.sample(torch.zeros(n, dtype=torch.long), gens).flatten(1)
    assert s.shape == (n, 8)
    assert torch.allclose(s.mean(0), p.means[0], atol=0.1)
    assert (torch.cov(s.T) - _model_cov(p, 0)).norm() / cov.norm() < 0.1
    center = p.means.mean(0)
    fixed = p.sample(torch.ones(3, dtype=torch.long), [torch.Generator() for _ in range(3)], guidance=2.0, scale=0.0)
    assert torch.allclose(fixed.flatten(1), (center + 2.0 * (p.means[1] - center)).expand(3, -1), atol=1e-5)


def test_each_images_draw_depends_only_on_its_own_generator():
    x, y, _, _ = _latents(200)
    p = GaussianInitPrior.fit(x, y, num_classes=2, rank=3)
    labels = torch.tensor([0, 1, 1])
    both = p.sample(labels, [torch.Generator().manual_seed(10 + i) for i in range(3)])
    alone = p.sample(labels[2:], [torch.Generator().manual_seed(12)])
    assert torch.allclose(both[2:], alone, atol=1e-6)
    assert not torch.allclose(both[1], both[2])
    with pytest.raises(ValueError, match="class labels"):
        p.sample(torch.tensor([2]), [torch.Generator()])


def test_fit_refuses_a_class_without_two_images_and_nan():
    x, y, _, _ = _latents(50)
    with pytest.raises(ValueError, match="class 2 has 0"):
        GaussianInitPrior.fit(x, y, num_classes=3, rank=2)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        GaussianInitPrior.fit(bad, y, num_classes=2, rank=2)


def test_save_load_round_trip_and_bad_files(tmp_path):
    x, y, _, _ = _latents(200)
    p = GaussianInitPrior.fit(x, y, num_classes=2, rank=3)
    assert GaussianInitPrior.load(tmp_path) is None                     # no prior: the generator's own init map
    p.save(tmp_path)
    q = GaussianInitPrior.load(tmp_path)
    assert q.latent_shape == (2, 2, 2) and q.rank == 3 and q.num_classes == 2
    for a, b in ((p.means, q.means), (p.factors, q.factors), (p.residual_std, q.residual_std)):
        assert torch.allclose(a, b, rtol=2e-3, atol=2e-3)                # stored in fp16
    q.check_matches(2, (2, 2, 2), "here")
    with pytest.raises(ValueError, match="refit"):
        q.check_matches(10, (2, 2, 2), "here")
    f = tmp_path / PRIOR_FILE
    f.write_bytes(f.read_bytes()[:100])                                  # truncated
    with pytest.raises(ValueError, match="not a readable init prior"):
        GaussianInitPrior.load(tmp_path)
