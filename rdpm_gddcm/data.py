"""Image datasets and image files (DESIGN "The command-line contract": ``--data-path``;
"Errors"; "This workplace's facts": CIFAR-10 as an ImageFolder tree in ``../shared/data``).

Every dataset returns ``(image, label)`` with ``image`` a float32 tensor (3,S,S) in [-1,1] (the
project's image convention, SPEC notation) and ``label`` an int, and exposes ``.classes`` and
``.num_classes``. ``build_dataset(data_path, ...)`` picks one from the ``--data-path`` string:

- ``DIR``                          an ImageFolder tree ``DIR/<class>/<image>`` (labels = sorted
                                   class names, like torchvision's ImageFolder)
- ``procedural`` / ``procedural:N`` a built-in deterministic class-conditional toy dataset
- ``cifar10-download:ROOT[:train|test]`` torchvision's CIFAR10 (downloads; online users only)

Also ``load_image`` (one file -> tensor, for the codec CLI) and ``save_image_grid`` /
``save_images`` (PNG, written to a temp name then renamed: nothing half-written is left behind).
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from .files import IMAGE_EXTENSIONS, list_image_files
from .metrics import to_uint8  # one uint8 conversion for saved images and metrics



class CorruptImageError(ValueError):
    """An image file that cannot be decoded; ``.path`` names it."""

    def __init__(self, path: str, reason: str | None = None):
        if reason is None:                   # re-raised from a DataLoader worker with its whole message
            self.path = None
            super().__init__(path)
            return
        self.path = path
        super().__init__(f"cannot read image {path!r} ({reason}): fix or delete the file (rdpm-tokenize and "
                         "rdpm-train-backbone can leave such files out with --skip-corrupt)")


# ---------------------------------------------------------------- single images

def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit / float grayscale: PIL's RGB conversion would clip to 255, so rescale first
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(a.max()), 1.0)
        img = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    # Alpha is dropped (like torchvision's ImageFolder loader, so pixels match DiT-style
    # pipelines); palette and grayscale images expand to RGB.
    return img.convert("RGB")  # a copy even for RGB: independent of the closed file


def _resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (bicubic; PIL's resize is antialiased), then center crop.
    Images already at the size are left untouched, so CIFAR-10 at 32 px stays bit-exact."""
    w, h = img.size
    if min(w, h) != size:
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
    if (w, h) != (size, size):
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return img


def _pil_to_tensor(img: Image.Image) -> torch.Tensor:
    a = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)
    return a.float() / 127.5 - 1.0


def _open_rgb(path: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated/corrupt data fails here, not later
            return _to_rgb(img)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # PIL signals bad data with UnidentifiedImageError (an OSError), OSError
        # ("image file is truncated"), ValueError or SyntaxError depending on the codec.
        raise CorruptImageError(path, f"{type(e).__name__}: {e}") from None


def load_image(path: str, image_size: int) -> torch.Tensor:
    """One image file -> (3,S,S) float32 in [-1,1], preprocessed like ``ImageFolderDataset``."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder, not an image file: pass one image (for a folder of images "
                                "use rdpm-tokenize or rdpm-reconstruct --data-path)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file {path!r} not found")
    return _pil_to_tensor(_resize_center_crop(_open_rgb(path), image_size))


def _check_image_batch(images: torch.Tensor, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{what} expects images shaped (B,3,H,W) in [-1,1], got {shape}")


def _atomic_save_png(array_hwc: np.ndarray, path: str) -> None:
    from .files import atomic_path
    with atomic_path(path) as tmp:
        Image.fromarray(array_hwc).save(tmp, format="PNG")


def save_image_grid(images: torch.Tensor, path: str, nrow: int = 8, padding: int = 2) -> None:
    """A (B,3,H,W) [-1,1] batch as one PNG grid, ``nrow`` images per row (torchvision's
    ``make_grid`` layout: ``padding`` px of black between and around images)."""
    _check_image_batch(images, "save_image_grid")
    x = to_uint8(images.detach().cpu())
    b, _, h, w = x.shape
    ncol = max(1, min(nrow, b))
    nrows = math.ceil(b / ncol)
    grid = torch.zeros(3, nrows * (h + padding) + padding, ncol * (w + padding) + padding,
                       dtype=torch.uint8)
    for i in range(b):
        r, c = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    _atomic_save_png(grid.permute(1, 2, 0).numpy(), path)


def save_images(images: torch.Tensor, paths: list[str]) -> None:
    """Each image of a (B,3,H,W) [-1,1] batch to its own PNG path."""
    _check_image_batch(images, "save_images")
    if len(paths) != images.shape[0]:
        raise ValueError(f"save_images got {images.shape[0]} images but {len(paths)} paths")
    x = to_uint8(images.detach().cpu()).permute(0, 2, 3, 1).numpy()
    for arr, p in zip(x, paths):
        _atomic_save_png(np.ascontiguousarray(arr), p)


# ---------------------------------------------------------------- ImageFolder

class ImageFolderDataset(Dataset):
    """``root/<class>/**/<image>`` -> ``(image (3,S,S) in [-1,1], label)``.

    Files are listed once (cheap), but decoded only in ``__getitem__``: validating 50k images
    up front would take minutes. A file that fails to decode raises ``CorruptImageError``; with
    ``skip_corrupt=True`` the next readable index (i+1, i+2, ... wrapping) is returned instead,
    so the substitution is deterministic, and the file is counted in ``num_skipped`` (counts are
    per process: each DataLoader worker keeps its own)."""

    def __init__(self, root: str, image_size: int, hflip: bool = False,
                 skip_corrupt: bool = False):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"data path {root!r} not found (expected an ImageFolder "
                                    "directory DIR/<class>/<image>.jpg, 'procedural[:N]' or "
                                    "'cifar10-download:ROOT')")
        if int(image_size) <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.root, self.image_size = root, int(image_size)
        self.hflip, self.skip_corrupt = hflip, skip_corrupt
        self.classes = sorted(e.name for e in os.scandir(root)
                              if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise ValueError(f"data path {root!r} has no class subfolders: put images in "
                             f"{os.path.join(root, '<class>', '<image>.jpg')} (one folder per "
                             "class; use a single folder for unlabelled data)")
        self.samples: list[tuple[str, int]] = []
        for label, cls in enumerate(self.classes):
            files = [str(f) for f in list_image_files(os.path.join(root, cls))]
            if not files:
                # an empty class would silently shift no labels but break class balance and
                # conditioning; torchvision refuses too
                raise ValueError(f"class folder {os.path.join(root, cls)!r} has no images with "
                                 f"extensions {', '.join(IMAGE_EXTENSIONS)}: add images or remove it")
            self.samples += [(f, label) for f in files]
        self.targets = [lbl for _, lbl in self.samples]
        self._bad: set[int] = set()
        self._warned = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def scan_readable(self) -> tuple[list[int], list[str]]:
        """Decode every file once: (indices of readable images, paths of unreadable ones). For
        commands that must *skip* bad files (tokenize), not substitute them."""
        ok, bad = [], []
        for i, (path, _) in enumerate(self.samples):
            try:
                _open_rgb(path)
                ok.append(i)
            except (CorruptImageError, FileNotFoundError):
                bad.append(path)
        return ok, bad

    @property
    def num_skipped(self) -> int:
        """How many distinct corrupt files were skipped so far (this process)."""
        return len(self._bad)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        img = _resize_center_crop(_open_rgb(path), self.image_size)
        x = _pil_to_tensor(img)
        if self.hflip and torch.rand(()) < 0.5:  # torch RNG: seeded per DataLoader worker
            x = x.flip(-1)
        return x, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        index %= n
        if not self.skip_corrupt:
            return self._load(index)
        for k in range(n):
            j = (index + k) % n
            if j in self._bad:
                continue
            try:
                return self._load(j)
            except (CorruptImageError, FileNotFoundError) as e:
                self._bad.add(j)
                if not self._warned:
                    self._warned = True
                    warnings.warn(f"skipping unreadable image ({e}); further skips are counted "
                                  "in dataset.num_skipped", RuntimeWarning, stacklevel=2)
        raise CorruptImageError(self.root, "no readable image in the whole dataset")


# ---------------------------------------------------------------- procedural

_SHAPES = ("circle", "square", "triangle", "ring", "cross", "star", "bar", "diamond",
           "crescent", "hexagon")


def _shape_sdf(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (roughly, in units of the shape's radius) to a unit-size shape."""
    r = np.hypot(u, v)
    if kind == "circle":
        return r - 1.0
    if kind == "square":
        return np.maximum(abs(u), abs(v)) - 0.85
    if kind in ("triangle", "hexagon"):
        n = 3 if kind == "triangle" else 6
        ang = np.arange(n) * 2 * np.pi / n + np.pi / 2
        return np.max([u * np.cos(a) + v * np.sin(a) for a in ang], axis=0) - (0.55 if n == 3
                                                                               else 0.9)
    if kind == "ring":
        return abs(r - 0.75) - 0.25
    if kind == "cross":
        return np.minimum(np.maximum(abs(u) - 0.3, abs(v) - 1.0),
                          np.maximum(abs(u) - 1.0, abs(v) - 0.3))
    if kind == "star":
        return r - (0.65 + 0.35 * np.cos(5 * np.arctan2(v, u)))
    if kind == "bar":
        return np.maximum(abs(u) - 1.0, abs(v) - 0.35)
    if kind == "diamond":
        return abs(u) + abs(v) - 1.0
    if kind == "crescent":
        return np.maximum(r - 1.0, 0.8 - np.hypot(u - 0.55, v))
    raise ValueError(kind)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


class ProceduralDataset(Dataset):
    """Built-in class-conditional toy data, no files: image ``i`` has label ``i % num_classes``
    (class-balanced) and is a function of ``(seed, i, image_size)`` only.

    Class signature (learnable): a shape type (``_SHAPES``, cycled), a foreground hue (evenly
    spaced, so classes beyond 10 still differ in colour) and a background gradient direction and
    tint. Per-image nuisance from ``rng(seed, i)``: position, size, rotation, small colour
    jitter and mild pixel noise. Geometry lives in [-1,1] coordinates, so any image size shows
    the same picture (edges are antialiased over ~1 px)."""

    def __init__(self, num_images: int, image_size: int, num_classes: int = 10, seed: int = 0):
        if num_images <= 0 or image_size <= 0 or num_classes <= 0:
            raise ValueError("ProceduralDataset needs positive num_images, image_size and "
                             f"num_classes, got {num_images}, {image_size}, {num_classes}")
        self.num_images, self.image_size = int(num_images), int(image_size)
        self.seed = int(seed)
        self.classes = [f"{_SHAPES[c % len(_SHAPES)]}{c}" for c in range(num_classes)]
        self.targets = [i % num_classes for i in range(self.num_images)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.num_images

    def render(self, index: int) -> np.ndarray:
        """(S,S,3) float in [0,1]."""
        c = index % self.num_classes
        rng = np.random.default_rng([self.seed, index])
        S = self.image_size
        g = (np.arange(S) + 0.5) / S * 2 - 1
        yy, xx = np.meshgrid(g, g, indexing="ij")
        # background: class-tinted gradient along a class-specific direction
        hue = c / self.num_classes
        phi = c * 2.399963  # golden angle: directions spread out for any number of classes
        t = (xx * np.cos(phi) + yy * np.sin(phi)) * 0.5 + 0.5
        bg_a = _hsv_to_rgb((hue + 0.5) % 1.0, 0.35, 0.25)
        bg_b = _hsv_to_rgb((hue + 0.5) % 1.0, 0.25, 0.6)
        img = bg_a + (bg_b - bg_a) * t[..., None]
        # foreground shape with per-image pose
        size = rng.uniform(0.35, 0.6)
        cx, cy = rng.uniform(-0.85 + size, 0.85 - size, size=2)
        rot = rng.uniform(0, 2 * np.pi)
        du, dv = xx - cx, yy - cy
        u = (du * np.cos(rot) + dv * np.sin(rot)) / size
        v = (-du * np.sin(rot) + dv * np.cos(rot)) / size
        d_px = _shape_sdf(_SHAPES[c % len(_SHAPES)], u, v) * size * S / 2
        alpha = np.clip(0.5 - d_px, 0.0, 1.0)[..., None]
        fg = _hsv_to_rgb((hue + rng.normal(0, 0.02)) % 1.0, rng.uniform(0.7, 0.95),
                         rng.uniform(0.8, 1.0))
        img = img * (1 - alpha) + fg * alpha
        img = img + rng.normal(0, 0.02, size=img.shape)
        return np.clip(img, 0.0, 1.0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        index %= self.num_images
        x = torch.from_numpy(self.render(index)).permute(2, 0, 1).float() * 2 - 1
        return x.contiguous(), index % self.num_classes


# ---------------------------------------------------------------- torchvision CIFAR-10

class _TorchvisionWrapper(Dataset):
    def __init__(self, ds, image_size: int, hflip: bool):
        self.ds, self.image_size, self.hflip = ds, image_size, hflip
        self.classes = list(ds.classes)
        self.targets = list(ds.targets)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index):
        img, label = self.ds[index]
        x = _pil_to_tensor(_resize_center_crop(_to_rgb(img), self.image_size))
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, int(label)


def cifar10_torchvision(root: str, train: bool, image_size: int, hflip: bool = False,
                        download: bool = True) -> Dataset:
    """torchvision's CIFAR10 (downloaded to ``root`` if needed) in this module's format.
    Needs the internet on first use; the offline copy is ``../shared/data/cifar10``."""
    from torchvision.datasets import CIFAR10
    return _TorchvisionWrapper(CIFAR10(root, train=train, download=download), image_size, hflip)


# ---------------------------------------------------------------- subsets

def balanced_indices(n_total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over a dataset of ``n_total``: ImageFolder lists images sorted
    by class, so this stride keeps a subset class-balanced (the first N would be one class)."""
    n = min(n, n_total)
    return [int(i * n_total / n) for i in range(n)]


def class_interleaved_order(targets) -> list[int]:
    """All indices ordered class by class in turn (1st image of every class, then every 2nd, ...):
    every prefix is as class-balanced as the data allows, so the first N positions are a balanced
    subset for any N and a larger N extends a smaller one without changing it."""
    seen: dict = {}
    keyed = []
    for i, y in enumerate(targets):
        rank = seen.get(y, 0)
        seen[y] = rank + 1
        keyed.append((rank, y, i))
    return [i for _, _, i in sorted(keyed)]


# ---------------------------------------------------------------- dispatch

def build_dataset(data_path: str, image_size: int, hflip: bool = False,
                  skip_corrupt: bool = False) -> Dataset:
    """``--data-path`` -> a dataset: ``procedural[:N]`` (default N=10000),
    ``cifar10-download:ROOT[:train|test]``, or an ImageFolder directory. ``hflip`` does not
    apply to ``procedural`` (its poses are already random); ``skip_corrupt`` only to folders."""
    if data_path == "procedural" or data_path.startswith("procedural:"):
        n = data_path.partition(":")[2] or "10000"
        if not n.isdigit() or int(n) <= 0:
            raise ValueError(f"--data-path {data_path!r}: use procedural or procedural:N with "
                             "N a positive number of images")
        return ProceduralDataset(int(n), image_size)
    if data_path.startswith("cifar10-download:"):
        rest = data_path[len("cifar10-download:"):]
        root, split = rest, "train"
        if rest.rsplit(":", 1)[-1] in ("train", "test") and ":" in rest:
            root, split = rest.rsplit(":", 1)
        if not root:
            raise ValueError(f"--data-path {data_path!r}: use cifar10-download:ROOT[:train|test]")
        return cifar10_torchvision(root, split == "train", image_size, hflip)
    return ImageFolderDataset(data_path, image_size, hflip=hflip, skip_corrupt=skip_corrupt)
