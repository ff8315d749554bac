"""CPU proxy metrics (not FID, always labelled so) from the project's CIFAR-10 classifier
(:mod:`rdpm_gddcm.classifier`): "CIFAR-feature FD" and "class accuracy"; and paired reconstruction
metrics (PSNR, SSIM, LPIPS) between ``samples[i]`` and ``reference[i]``."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .fidelity import fallback_stats_path, file_sha256, read_stats_any, stats_cache_path, write_cached_stats
from .image_sources import EvalError, Source

PROXY_FD = "CIFAR-feature FD"
PROXY_ACC = "class accuracy"


# --------------------------------------------------------------------------------------------
# Proxy metrics (CIFAR classifier) and paired reconstruction metrics
# --------------------------------------------------------------------------------------------

def _batches(ds: Dataset, batch_size: int):
    for i in range(0, len(ds), batch_size):
        yield torch.stack([ds[j] for j in range(i, min(i + batch_size, len(ds)))])


def classifier_outputs(model, ds: Dataset, batch_size: int = 250, device="cpu"):
    """(features float64 (N, D), predicted classes int64 (N,)) of a uint8 image dataset."""
    feats, preds = [], []
    with torch.no_grad():
        for x in _batches(ds, batch_size):
            f, lo = model.features_and_logits(x.to(device))
            feats.append(f.double().cpu())
            preds.append(lo.argmax(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def proxy_metrics(samples: Source, reference: Optional[Source], classifier_path, *, labels=None,
                  stats_cache=None, use_stats_cache=True, device="cpu", batch_size=250):
    """The CPU proxy: ``{"CIFAR-feature FD": ..., "class accuracy": ...}`` plus info and notes.

    "CIFAR-feature FD" is the Fréchet distance between Gaussian fits of the proxy classifier's
    penultimate features of samples and reference (NOT FID: a CIFAR-10 classifier, not Inception).
    "class accuracy" is the fraction of samples whose predicted class equals the requested label.
    """
    from .classifier import load_classifier
    from .metrics import frechet_distance, gaussian_stats

    cpath = Path(classifier_path)
    try:
        model = load_classifier(cpath, device=device)
    except (FileNotFoundError, ValueError) as e:
        raise EvalError(f"--proxy-classifier: {e}") from None
    wfile = cpath / "classifier.safetensors" if cpath.is_dir() else cpath
    csha = file_sha256(wfile)
    values: Dict[str, float] = {}
    notes: List[str] = []
    info = {"classifier": str(cpath), "classifier_sha256": csha,
            "note": f"'{PROXY_FD}' and '{PROXY_ACC}' come from a small CIFAR-10 classifier trained by this project; "
                    f"they are CPU proxies, not FID/IS, and not comparable with published numbers"}
    fs, preds = classifier_outputs(model, samples.dataset, batch_size, device)
    if reference is None or reference.dataset is None:
        notes.append(f"{PROXY_FD} skipped: " + ("no --reference" if reference is None else
                                                 f"the reference {reference.path} has no images"))
    else:
        mu_r = sig_r = None
        want = {"source": str(Path(reference.path).resolve()), "num_images": reference.num_images,
                "fingerprint": reference.fingerprint, "feature_extractor": "rdpm_gddcm.classifier",
                "classifier_sha256": csha}
        cache_path = stats_cache_path(reference.path, ".cifar-feature-stats.npz", stats_cache)
        if use_stats_cache:
            st, found = read_stats_any(cache_path, fallback_stats_path(reference.path, ".cifar-feature-stats.npz", stats_cache),
                                  want)
            if st is not None:
                mu_r, sig_r = st["mu"], st["sigma"]
                info["reference_stats"] = f"cached {found}"
        if mu_r is None:
            fr, _ = classifier_outputs(model, reference.dataset, batch_size, device)
            mu_r, sig_r = gaussian_stats(fr)
            if use_stats_cache:
                written = write_cached_stats(cache_path, mu_r, sig_r, want,
                                             fallback_stats_path(reference.path, ".cifar-feature-stats.npz", stats_cache))
                info["reference_stats"] = f"computed; cached to {written}" if written else "computed"
        mu_s, sig_s = gaussian_stats(fs)
        values[PROXY_FD] = frechet_distance(mu_s, sig_s, mu_r, sig_r)
    if labels is None:
        notes.append(f"{PROXY_ACC} skipped: no labels (a 'labels' array in samples.npz, or --labels FILE)")
    else:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(preds):
            raise EvalError(f"labels: {len(labels)} labels for {len(preds)} samples")
        if not np.issubdtype(labels.dtype, np.integer):
            raise EvalError(f"labels: dtype {labels.dtype}; expected integer class indices")
        k = model.config.num_classes
        if labels.min() < 0 or labels.max() >= k:
            raise EvalError(f"labels: values must lie in 0..{k - 1} (the classifier's classes), got "
                            f"{labels.min()}..{labels.max()}")
        values[PROXY_ACC] = float((preds == labels).mean())
    return values, info, notes


def paired_metrics(samples: Source, reference: Source, lpips_weights=None, lpips_net="alex", batch_size=64,
                   device="cpu"):
    """Mean PSNR / SSIM (and LPIPS) of ``samples[i]`` vs ``reference[i]``."""
    from .metrics import lpips as lpips_fn, psnr, ssim

    if reference is None or reference.dataset is None:
        raise EvalError("--paired needs a --reference with images (not statistics)")
    if len(samples.dataset) != len(reference.dataset):
        raise EvalError(f"--paired: {len(samples.dataset)} samples but {len(reference.dataset)} reference images")
    ps, ss, lp = [], [], []
    for a, b in zip(_batches(samples.dataset, batch_size), _batches(reference.dataset, batch_size)):
        if a.shape != b.shape:
            raise EvalError(f"--paired: sample images are {tuple(a.shape[1:])}, reference images {tuple(b.shape[1:])}")
        ps.append(psnr(a, b))
        ss.append(ssim(a, b))
        if lpips_weights:
            try:
                lp.append(lpips_fn(a, b, lpips_weights, net=lpips_net, device=device))
            except (ImportError, FileNotFoundError) as e:
                raise EvalError(str(e)) from None
    p = torch.cat(ps)
    out = {"psnr": float(p[torch.isfinite(p)].mean()) if torch.isfinite(p).any() else float("inf"),
           "psnr_identical_images": int((~torch.isfinite(p)).sum()),
           "ssim": float(torch.cat(ss).mean())}
    if lp:
        out["lpips"] = float(torch.cat(lp).mean())
    return out


