"""Image-quality metrics that do not need torch-fidelity: reconstruction metrics and the
Fréchet distance.

Reconstruction metrics (``rdpm-reconstruct`` uses them; ``rdpm-eval --paired`` too):

- :func:`psnr` - peak signal-to-noise ratio, ``10·log10(255² / MSE)``, per image, computed on the
  uint8 images (both sides go through the same :func:`to_uint8` conversion first, so a
  reconstruction is scored exactly as it would be saved as PNG). Identical images give ``inf``.
- :func:`ssim` - structural similarity of Wang, Bovik, Sheikh & Simoncelli, "Image quality
  assessment: from error visibility to structural similarity", IEEE TIP 13(4), 2004: an 11x11
  Gaussian window with σ = 1.5 (normalised to sum 1), constants ``C1 = (0.01·L)²``,
  ``C2 = (0.03·L)²`` with ``L = 255``, population (not sample) local statistics, the SSIM map over
  the "valid" window positions only (no padding), averaged over pixels and then over the RGB
  channels. This is what scikit-image's ``structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)`` computes (its
  reflect-padded border is cropped before averaging). It is implemented here in torch because the
  standard implementations (torchmetrics, scikit-image) are not dependencies of this project.
- :func:`lpips` - LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
  Perceptual Metric", CVPR 2018), optional: needs the official ``lpips`` package and its linear-layer
  weight file (``weights/v0.1/{alex,vgg}.pth`` of that package; pass it as ``--lpips-weights``).

:func:`frechet_distance` is the Fréchet distance between two Gaussians (Dowson & Landau 1982;
used as FID by Heusel et al. 2017): ``|mu1-mu2|² + Tr(S1 + S2 - 2·(S1·S2)^{1/2})``; the trace
term by symmetric eigendecompositions (default) or ``scipy.linalg.sqrtm`` as in the reference
TTUR / pytorch-fid code. The project uses it for the "CIFAR-feature FD" proxy (see
:mod:`rdpm_gddcm.classifier`) and for FID from precomputed reference statistics; FID between two
image sets goes through torch-fidelity (:mod:`rdpm_gddcm.evaluate`).
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = Union[torch.Tensor, np.ndarray]


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------

def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (any float dtype, any shape) -> uint8 ``round((x + 1)·127.5)`` clamped to
    [0, 255]. NaN raises (a NaN image would otherwise silently become 0)."""
    if not torch.is_tensor(images):
        images = torch.as_tensor(images)
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise TypeError(f"to_uint8 expects float images in [-1, 1] or uint8, got dtype {images.dtype}")
    if torch.isnan(images).any():
        raise ValueError("to_uint8: images contain NaN")
    return torch.round((images.float() + 1.0) * 127.5).clamp_(0, 255).to(torch.uint8)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) images at ``size`` x ``size``, for scoring samples at the dataset's resolution
    (a 64 px sample of a CIFAR-10 model is compared with 32 px images as a 32 px image): an integer
    downsampling factor averages each block (area: the box filter), other sizes use antialiased
    bilinear resampling; rounded back to uint8. Square images only; the size as given is a no-op."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(f"resize_uint8 expects uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h != w:
        raise ValueError(f"resize_uint8: images are {h}x{w}, not square")
    if h == size:
        return images
    x = images.float()
    if h > size and h % size == 0:
        x = torch.nn.functional.avg_pool2d(x, h // size)
    else:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp_(0, 255).to(torch.uint8)


def _as_uint8_batch(x: ArrayLike, name: str) -> torch.Tensor:
    """Accept (B,C,H,W) or (C,H,W), float in [-1,1] or uint8; return uint8 (B,C,H,W)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not torch.is_tensor(x):
        raise TypeError(f"{name}: expected a torch tensor or numpy array, got {type(x).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"{name}: expected images shaped (B, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    return to_uint8(x.detach().cpu())


def _pair(a: ArrayLike, b: ArrayLike) -> Tuple[torch.Tensor, torch.Tensor]:
    a8, b8 = _as_uint8_batch(a, "a"), _as_uint8_batch(b, "b")
    if a8.shape != b8.shape:
        raise ValueError(f"image batches differ in shape: a {tuple(a8.shape)} vs b {tuple(b8.shape)}")
    return a8, b8


# --------------------------------------------------------------------------------------------
# PSNR / SSIM
# --------------------------------------------------------------------------------------------

def psnr(a: ArrayLike, b: ArrayLike) -> torch.Tensor:
    """Per-image PSNR in dB, float64 tensor (B,).

    ``a``, ``b``: (B, C, H, W) or (C, H, W) images, float in [-1, 1] or uint8; both are converted
    with :func:`to_uint8` and compared as 0..255 integers: ``PSNR = 10·log10(255² / MSE)`` with the
    MSE over all pixels and channels of one image. Identical images give ``inf``.
    """
    a8, b8 = _pair(a, b)
    d = a8.double() - b8.double()
    mse = d.pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10((255.0 ** 2) / mse)  # mse == 0 -> inf


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    """1-D Gaussian window of ``size`` taps, standard deviation ``sigma``, normalised to sum 1."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def ssim(a: ArrayLike, b: ArrayLike, window_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03, data_range: float = 255.0) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004), float64 tensor (B,); see the module docstring.

    ``a``, ``b``: (B, C, H, W) or (C, H, W), float in [-1, 1] or uint8 (converted with
    :func:`to_uint8`, then compared in 0..255 units). Each channel's SSIM map is computed with a
    separable ``window_size`` Gaussian (σ = ``sigma``) over the valid positions, averaged over
    pixels, then over channels. Identical images give exactly 1.0 (up to float rounding).
    Images must be at least ``window_size`` pixels on each side.
    """
    a8, b8 = _pair(a, b)
    _, c, h, w = a8.shape
    if h < window_size or w < window_size:
        raise ValueError(f"ssim: images of {h}x{w} are smaller than the {window_size}x{window_size} window")
    x = a8.double()
    y = b8.double()
    g = gaussian_window(window_size, sigma)
    gh = g.view(1, 1, window_size, 1).expand(c, 1, window_size, 1)
    gw = g.view(1, 1, 1, window_size).expand(c, 1, 1, window_size)

    def filt(z):
        return F.conv2d(F.conv2d(z, gh, groups=c), gw, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x * mu_x
    syy = filt(y * y) - mu_y * mu_y
    sxy = filt(x * y) - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return smap.mean(dim=(2, 3)).mean(dim=1)


# --------------------------------------------------------------------------------------------
# LPIPS (optional)
# --------------------------------------------------------------------------------------------

_LPIPS_CACHE: dict = {}


def lpips(a: ArrayLike, b: ArrayLike, weights_path: Optional[str], net: str = "alex",
          batch_size: int = 64, device: str = "cpu") -> torch.Tensor:
    """Per-image LPIPS distance (Zhang et al. 2018), float64 tensor (B,). Optional.

    Uses the official ``lpips`` package (``pip install lpips``): ``lpips.LPIPS(net=net,
    model_path=weights_path)`` loads the linear calibration layers from ``weights_path`` - the
    package's own weight-file format, ``lpips/weights/v0.1/{alex,vgg,squeeze}.pth`` - while the
    backbone (AlexNet / VGG16) comes from torchvision's pretrained weights (torch hub cache or
    download). Images are compared after the same :func:`to_uint8` rounding as PSNR/SSIM and then
    mapped back to [-1, 1], the range LPIPS expects.
    """
    if net not in ("alex", "vgg", "squeeze"):
        raise ValueError(f"lpips: net must be 'alex', 'vgg' or 'squeeze', got {net!r}")
    try:
        import lpips as _lpips  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "LPIPS needs the official 'lpips' package: `pip install lpips`, then pass its linear-layer weights "
            "with --lpips-weights PATH (lpips/weights/v0.1/alex.pth or vgg.pth from that package)") from e
    if not weights_path:
        raise ValueError("lpips: no weights given; pass --lpips-weights PATH (lpips/weights/v0.1/alex.pth or vgg.pth "
                         "of the official lpips package)")
    import os
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"--lpips-weights: file not found: {weights_path} (expected the lpips package's "
                                f"weights/v0.1/{net}.pth)")
    key = (weights_path, net, device)
    if key not in _LPIPS_CACHE:
        import lpips as _lpips
        _LPIPS_CACHE[key] = _lpips.LPIPS(net=net, model_path=weights_path, verbose=False).to(device).eval()
    model = _LPIPS_CACHE[key]
    a8, b8 = _pair(a, b)
    out = []
    with torch.no_grad():
        for i in range(0, len(a8), batch_size):
            xa = a8[i:i + batch_size].float().div(127.5).sub(1).to(device)
            xb = b8[i:i + batch_size].float().div(127.5).sub(1).to(device)
            out.append(model(xa, xb).flatten().double().cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------

def gaussian_stats(features: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ``np.cov``) covariance of features (N, D), float64."""
    f = features.detach().cpu().double().numpy() if torch.is_tensor(features) else np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features shaped (N>=2, D), got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or inf")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "eigh", eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|² + Tr(sigma1) + Tr(sigma2) - 2·Tr((sigma1·sigma2)^{1/2})``.

    ``method="eigh"`` (default) gets the trace term from symmetric eigendecompositions:
    with ``R = sigma1^{1/2}`` (eigh, negative round-off eigenvalues clipped to 0), the non-zero
    eigenvalues of ``sigma1·sigma2 = R·(R·sigma2)`` are those of the symmetric PSD matrix
    ``R·sigma2·R``, so ``Tr((sigma1·sigma2)^{1/2}) = Σ sqrt(eigvalsh(R·sigma2·R))``. This is exact,
    needs no complex arithmetic and is faster than ``scipy.linalg.sqrtm`` for 2048-d Inception
    statistics. ``method="sqrtm"`` is the reference
    TTUR / pytorch-fid computation (``scipy.linalg.sqrtm`` of the product, ``eps·I`` added to both
    covariances when the product is singular); the tests check both agree.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    for n, v in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(v).all():
            raise ValueError(f"frechet_distance: {n} contains NaN or inf")
    diff = mu1 - mu2
    if method == "eigh":
        s1 = (sigma1 + sigma1.T) / 2
        s2 = (sigma2 + sigma2.T) / 2
        w, v = np.linalg.eigh(s1)
        r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        m = r @ s2 @ r
        ev = np.linalg.eigvalsh((m + m.T) / 2)
        tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    elif method == "sqrtm":
        from scipy import linalg

        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                m = np.max(np.abs(covmean.imag))
                raise ValueError(f"frechet_distance: imaginary component {m} in the matrix square root")
            covmean = covmean.real
        tr_covmean = float(np.trace(covmean))
    else:
        raise ValueError(f"frechet_distance: method must be 'eigh' or 'sqrtm', got {method!r}")
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def frechet_distance_features(f1: ArrayLike, f2: ArrayLike) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (N1, D), (N2, D)."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


__all__ = ["to_uint8", "resize_uint8", "psnr", "ssim", "lpips", "gaussian_window", "gaussian_stats", "frechet_distance",
           "frechet_distance_features"]
