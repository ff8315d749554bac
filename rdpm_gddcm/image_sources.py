"""Images to evaluate (``rdpm-eval``): a folder of images (recursive, sorted by relative path), an
``.npz`` whose ``arr_0`` is uint8 NHWC (ADM format), or, for a reference, FID statistics; and the
class labels that go with samples. Every defect is an ``EvalError`` naming the file and the fix."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .files import list_image_files

_GRAY_MODES = ("L", "LA", "1", "I", "I;16", "F")


class EvalError(ValueError):
    """Bad input or a missing file: the message says which and what to do."""



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


class ResizedImages(Dataset):
    """Another dataset's uint8 (3, H, W) images at ``size`` x ``size`` (``metrics.resize_uint8``: the box
    filter for integer downsampling factors)."""

    def __init__(self, dataset: Dataset, size: int):
        self.dataset, self.size = dataset, size

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        from .metrics import resize_uint8
        return resize_uint8(self.dataset[i][None], self.size)[0]


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
        if isinstance(self.dataset, ResizedImages):
            return [self.dataset.size, self.dataset.size]
        return list(self.dataset.arr.shape[1:3])


def _list_images(root: Path) -> List[Path]:
    """The folder's images, without the preview grids ``rdpm-sample`` writes (``grid*.png``)."""
    return list_image_files(root, skip=lambda f: f.lower().startswith("grid") and f.lower().endswith(".png"))


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


