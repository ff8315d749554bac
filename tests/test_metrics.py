"""Reconstruction metrics (PSNR, SSIM, LPIPS guard), the Fréchet distance, and the proxy FD's
response to blur. Fast, CPU, no network."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rdpm_gddcm.metrics import (frechet_distance, frechet_distance_features, gaussian_window, lpips, psnr,
                                resize_uint8, ssim, to_uint8)

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
from conftest import find_shared_dir  # noqa: E402  ($RDPM_SHARED or ../shared)

CIFAR_VAL = (find_shared_dir() or Path("/nonexistent")) / "data" / "cifar10" / "val"
TRAINED = REPO / "assets" / "cifar10-classifier"


def _rand_u8(shape, seed=0, lo=0, hi=256):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.int64).to(torch.uint8)


# ------------------------------------------------------------------ to_uint8
def test_to_uint8_known_values():
    x = torch.tensor([-1.0, 1.0, 0.0, -2.0, 3.0, -1 + 1 / 127.5, 0.999])
    assert to_uint8(x).tolist() == [0, 255, 128, 0, 255, 1, 255]
    u = _rand_u8((2, 3, 4, 4))
    assert torch.equal(to_uint8(u.float() / 127.5 - 1), u)  # exact round trip
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.tensor([0.0, float("nan")]))


def test_resize_uint8_box_filter_and_mean():
    u = _rand_u8((3, 3, 32, 32))
    up = u.repeat_interleave(2, -1).repeat_interleave(2, -2)              # 64 px nearest copies
    assert torch.equal(resize_uint8(up, 32), u) and resize_uint8(u, 32) is u
    box = resize_uint8(u, 16)                                              # exact 2x2 block means, rounded
    want = u.float().reshape(3, 3, 16, 2, 16, 2).mean((3, 5)).round().to(torch.uint8)
    assert torch.equal(box, want)
    odd = resize_uint8(u, 20)                                              # non-integer factor: antialiased
    assert odd.shape == (3, 3, 20, 20) and abs(odd.float().mean() - u.float().mean()) < 2.0
    with pytest.raises(TypeError):
        resize_uint8(u.float(), 16)


# ------------------------------------------------------------------ PSNR
def test_psnr_identical_is_inf():
    a = torch.rand(3, 3, 16, 16) * 2 - 1
    p = psnr(a, a)
    assert p.shape == (3,) and torch.isinf(p).all() and (p > 0).all()


@pytest.mark.parametrize("offset", [1, 5, 17])
def test_psnr_constant_offset_analytic(offset):
    a = _rand_u8((2, 3, 12, 12), lo=20, hi=200)
    b = a + offset  # no wrap-around: values stay < 256
    expected = 20 * math.log10(255 / offset)  # MSE = offset^2
    assert torch.allclose(psnr(a, b), torch.full((2,), expected, dtype=torch.float64), atol=1e-10)
    # the float [-1, 1] path converts with to_uint8 first and gives the same number
    fa, fb = a.float() / 127.5 - 1, b.float() / 127.5 - 1
    assert torch.allclose(psnr(fa, fb), psnr(a, b))


def test_psnr_per_image_and_shape_errors():
    a = _rand_u8((2, 3, 8, 8), lo=10, hi=100)
    b = a.clone()
    b[1] += 10
    p = psnr(a, b)
    assert torch.isinf(p[0]) and abs(p[1] - 20 * math.log10(25.5)) < 1e-9
    with pytest.raises(ValueError, match="shape"):
        psnr(a, b[:, :, :4])


# ------------------------------------------------------------------ SSIM
def _ssim_direct(x: np.ndarray, y: np.ndarray, win=11, sigma=1.5):
    """Wang et al. 2004 evaluated literally: for every valid window position, Gaussian-weighted
    means, variances and covariance, then the SSIM formula; mean over positions and channels."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    ax = np.arange(win) - (win - 1) / 2
    g1 = np.exp(-ax ** 2 / (2 * sigma ** 2))
    w = np.outer(g1, g1)
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    C, H, W = x.shape
    vals = []
    for c in range(C):
        for i in range(H - win + 1):
            for j in range(W - win + 1):
                px, py = x[c, i:i + win, j:j + win], y[c, i:i + win, j:j + win]
                mx, my = (w * px).sum(), (w * py).sum()
                vx = (w * (px - mx) ** 2).sum()
                vy = (w * (py - my) ** 2).sum()
                cxy = (w * (px - mx) * (py - my)).sum()
                vals.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_identical_is_one():
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    s = ssim(a, a)
    assert s.shape == (2,) and torch.allclose(s, torch.ones(2, dtype=torch.float64), atol=1e-12)


def test_ssim_matches_direct_formula_on_noise():
    x = _rand_u8((2, 3, 15, 14), seed=1)
    noise = torch.randint(-40, 41, x.shape, generator=torch.Generator().manual_seed(2))
    y = (x.long() + noise).clamp(0, 255).to(torch.uint8)
    got = ssim(x, y)
    for i in range(2):
        want = _ssim_direct(x[i].numpy(), y[i].numpy())
        assert abs(float(got[i]) - want) < 1e-10
    assert (got < 1).all() and (got > 0).all()
    # a structured image degraded by noise: SSIM falls as the noise grows
    base = torch.linspace(0, 255, 24).round().to(torch.uint8).view(1, 1, 1, 24).expand(1, 3, 24, 24).clone()
    prev = 1.0
    for amp in (5, 20, 60):
        n = torch.randint(-amp, amp + 1, base.shape, generator=torch.Generator().manual_seed(amp))
        s = float(ssim(base, (base.long() + n).clamp(0, 255).to(torch.uint8))[0])
        assert s < prev
        prev = s


def test_ssim_against_scikit_image_if_installed():
    skm = pytest.importorskip("skimage.metrics", reason="scikit-image not installed (checked against the direct "
                                                        "formula instead)")
    x = _rand_u8((1, 3, 32, 32), seed=3)
    y = (x.long() + torch.randint(-30, 31, x.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 255)
    y = y.to(torch.uint8)
    want = skm.structural_similarity(x[0].permute(1, 2, 0).numpy(), y[0].permute(1, 2, 0).numpy(),
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)
    assert abs(float(ssim(x, y)[0]) - want) < 1e-6


def test_ssim_window_and_small_images():
    g = gaussian_window(11, 1.5)
    assert g.shape == (11,) and abs(float(g.sum()) - 1) < 1e-12 and int(g.argmax()) == 5
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


# ------------------------------------------------------------------ LPIPS guard
def test_lpips_without_package_says_what_to_do():
    try:
        import lpips as _  # noqa: F401
        pytest.skip("the lpips package is installed; the missing-package message cannot be tested")
    except ImportError:
        pass
    a = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ImportError) as e:
        lpips(a, a, "alex.pth")
    assert "pip install lpips" in str(e.value) and "--lpips-weights" in str(e.value)


# ------------------------------------------------------------------ Fréchet distance
def test_frechet_distance_analytic_and_methods_agree():
    # 1-D: N(0, 1) vs N(m, s^2) -> m^2 + 1 + s^2 - 2 s
    assert abs(frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) - (9 + 1 + 4 - 4)) < 1e-12
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 12))
    y = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 12)) * 0.5 + 0.3
    mx, sx = x.mean(0), np.cov(x, rowvar=False)
    my, sy = y.mean(0), np.cov(y, rowvar=False)
    a = frechet_distance(mx, sx, my, sy, method="eigh")
    b = frechet_distance(mx, sx, my, sy, method="sqrtm")
    assert a > 0 and abs(a - b) < 1e-8 * max(1, a)
    assert abs(frechet_distance(mx, sx, mx, sx)) < 1e-8  # a set against itself
    # rank-deficient covariances (fewer samples than dimensions), as with small sample sets
    # (zero eigenvalues come out as ~1e-15 whose square roots add up to ~1e-7: relative tolerance)
    f = rng.standard_normal((8, 20))
    assert abs(frechet_distance_features(f, f)) < 1e-6 * np.trace(np.cov(f, rowvar=False))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance([np.nan], [[1.0]], [0.0], [[1.0]])


# ------------------------------------------------------------------ proxy FD vs blur
def _cifar_val_images(per_class=24):
    from PIL import Image
    imgs = []
    for d in sorted(p for p in CIFAR_VAL.iterdir() if p.is_dir()):
        for f in sorted(d.iterdir())[:per_class]:
            imgs.append(np.asarray(Image.open(f).convert("RGB")))
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.skipif(not CIFAR_VAL.is_dir(), reason=f"CIFAR-10 val images not found at {CIFAR_VAL}")
def test_proxy_fd_grows_with_blur():
    from torchvision.transforms.functional import gaussian_blur

    from rdpm_gddcm.classifier import CifarClassifier, ClassifierConfig, classifier_features, load_classifier

    if (TRAINED / "classifier.safetensors").is_file():
        model = load_classifier(TRAINED)
    else:  # a randomly initialised one still responds to blur (the code path is the same)
        torch.manual_seed(0)
        model = CifarClassifier(ClassifierConfig(widths=(16, 32, 64, 128))).eval()
    ref = _cifar_val_images()
    f_ref = classifier_features(model, ref)
    fds = []
    for sigma in (0.6, 1.0, 1.5, 2.5):
        blurred = gaussian_blur(ref.float(), kernel_size=9, sigma=sigma).round().clamp(0, 255).to(torch.uint8)
        fds.append(frechet_distance_features(classifier_features(model, blurred), f_ref))
    assert all(b > a for a, b in zip(fds, fds[1:])), fds
    assert fds[0] > 0
