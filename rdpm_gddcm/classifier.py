"""A small CIFAR-10 classifier: the project's *CPU proxy* for sample-quality metrics.

Standard FID/IS need torch-fidelity's Inception-V3 weights, which cannot be downloaded on this
workplace's machines. To still have a signal on CPU, this module trains (and loads) a small
ResNet-style CIFAR-10 classifier and defines two **proxy** metrics from it:

- ``"CIFAR-feature FD"``: the Fréchet distance (Heusel et al. 2017, Eq. 6 of "GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium") between Gaussian fits of this
  classifier's penultimate features of the samples and of the reference images. Same formula as
  FID, different (and much weaker, CIFAR-only) feature extractor: it is **not FID** and its values
  are not comparable with published FID numbers; every output calls it "CIFAR-feature FD".
- ``"class accuracy"``: the fraction of class-conditional samples that the classifier assigns to
  the class they were requested for (the "classification accuracy score" idea, here with a
  classifier trained on real data and applied to generated data).

Architecture: the "ResNet-9" family popularised by D. Page's fast CIFAR-10 training ("How to train
your ResNet", 2018) and K. Jordan's airbench: conv-BN-ReLU stem, three stages of
``conv -> maxpool -> BN -> ReLU`` (the first and last followed by a residual block of two such
convs), global max-pool, a linear head scaled by ``head_scale``. ``features()`` returns the pooled
penultimate vector (``widths[-1]`` channels), ``logits()`` the class scores.

Training (:func:`train_classifier`): SGD with Nesterov momentum, a one-cycle (linear warm-up then
linear decay) learning rate, label smoothing, random crop with 4-pixel padding + horizontal flip,
bf16 autocast where ``--mixed-precision auto`` finds it faster on this CPU (``precision.py``).

Weights are shipped as fp16 safetensors plus a JSON config; load them with
:func:`load_classifier` (``assets/cifar10-classifier/`` holds the trained one).

Images given to :meth:`CifarClassifier.logits` / :meth:`CifarClassifier.features` may be float
tensors in [-1, 1] (the project's convention) of shape (B, 3, H, W), or uint8 tensors (B, 3, H, W)
in [0, 255]; sizes other than 32x32 are resized (bilinear, antialiased) to 32x32 first.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

import torch.nn.functional as F

from .files import list_image_files
from .precision import HELP as PRECISION_HELP

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# Per-channel statistics of the CIFAR-10 training set, in [0, 1] units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

WEIGHTS_NAME = "classifier.safetensors"
CONFIG_NAME = "classifier.json"


@dataclass
class ClassifierConfig:
    """Architecture of :class:`CifarClassifier` (written as ``classifier.json``)."""

    widths: tuple = (32, 64, 128, 256)  # stem, stage 1, stage 2, stage 3 (half of Page's ResNet-9)
    num_classes: int = 10
    image_size: int = 32
    head_scale: float = 0.125
    class_names: tuple = CIFAR10_CLASSES
    mean: tuple = CIFAR10_MEAN
    std: tuple = CIFAR10_STD

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("widths", "class_names", "mean", "std"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        for k in ("widths", "class_names", "mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c), _conv_bn(c, c))

    def forward(self, x):
        return x + self.body(x)


class CifarClassifier(nn.Module):
    """ResNet-9-style CIFAR-10 classifier (see the module docstring)."""

    def __init__(self, config: Optional[ClassifierConfig] = None):
        super().__init__()
        self.config = config or ClassifierConfig()
        w0, w1, w2, w3 = self.config.widths
        self.stem = _conv_bn(3, w0)
        self.layer1 = nn.Sequential(_conv_bn(w0, w1, pool=True), _Residual(w1))
        self.layer2 = _conv_bn(w1, w2, pool=True)
        self.layer3 = nn.Sequential(_conv_bn(w2, w3, pool=True), _Residual(w3))
        self.head = nn.Linear(w3, self.config.num_classes, bias=False)
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.config.std).view(1, 3, 1, 1), persistent=False)

    @property
    def feature_dim(self) -> int:
        return self.config.widths[-1]

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [0,255] or float [-1,1] (B,3,H,W) -> normalised float (B,3,32,32)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"classifier input must be (B, 3, H, W) RGB images, got shape {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            x = images.float() / 255.0
        else:
            x = (images.float() + 1.0) * 0.5
        s = self.config.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        x = x.to(self.mean.device)
        return (x - self.mean) / self.std

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return torch.amax(x, dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of already-normalised inputs (what training uses)."""
        return self.head(self._trunk(x)) * self.config.head_scale

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate (globally max-pooled) features, float32 (B, widths[-1])."""
        return self._trunk(self.prepare(images)).float()

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor):
        """Both at once: (features float32 (B, D), logits float32 (B, num_classes))."""
        f = self._trunk(self.prepare(images))
        return f.float(), (self.head(f) * self.config.head_scale).float()

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits, float32 (B, num_classes)."""
        return self.forward(self.prepare(images)).float()


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# Saving / loading
# --------------------------------------------------------------------------------------------

def save_classifier(model: CifarClassifier, out_dir, extra: Optional[dict] = None, dtype=torch.float16) -> Path:
    """Write ``classifier.safetensors`` (``dtype``, default fp16) and ``classifier.json`` atomically."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(dtype)
        sd[k] = v.contiguous()
    tmp = out_dir / (WEIGHTS_NAME + ".tmp")
    save_file(sd, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)  # safetensors creates the file owner-only
    os.replace(tmp, out_dir / WEIGHTS_NAME)
    cfg = {"architecture": "rdpm_gddcm.classifier.CifarClassifier", **model.config.to_dict()}
    if extra:
        cfg.update(extra)
    tmpj = out_dir / (CONFIG_NAME + ".tmp")
    tmpj.write_text(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmpj, out_dir / CONFIG_NAME)
    return out_dir / WEIGHTS_NAME


def load_classifier(path, device="cpu") -> CifarClassifier:
    """Load a classifier from a directory holding ``classifier.safetensors`` + ``classifier.json``,
    or from the ``.safetensors`` file itself (the JSON is looked up next to it). Returns the model
    in eval mode, float32, on ``device``."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        wpath, cpath = path / WEIGHTS_NAME, path / CONFIG_NAME
    else:
        wpath = path
        cpath = path.with_name(CONFIG_NAME)
        if not cpath.exists():
            cpath = path.with_suffix(".json")
    if not wpath.exists():
        raise FileNotFoundError(
            f"proxy classifier weights not found: {wpath} (expected a directory with {WEIGHTS_NAME} and "
            f"{CONFIG_NAME}, e.g. assets/cifar10-classifier/, made by python -m rdpm_gddcm.classifier)")
    cfg = ClassifierConfig()
    if cpath.exists():
        cfg = ClassifierConfig.from_dict(json.loads(cpath.read_text()))
    model = CifarClassifier(cfg)
    sd = load_file(str(wpath))
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{wpath}: weights do not match the classifier config {cpath} "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------
# Batched inference helpers used by the proxy metrics
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def _batched(fn: Callable, images, batch_size: int = 500, autocast: bool = False) -> torch.Tensor:
    outs = []
    n = len(images)
    for i in range(0, n, batch_size):
        chunk = images[i:i + batch_size]
        if isinstance(chunk, np.ndarray):
            chunk = torch.from_numpy(np.ascontiguousarray(chunk))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            outs.append(fn(chunk).float())
    return torch.cat(outs) if outs else torch.empty(0)


def classifier_features(model: CifarClassifier, images, batch_size: int = 500) -> np.ndarray:
    """Features (float64 numpy, (N, D)) of images given as uint8 (N,3,H,W) or float [-1,1]."""
    model.eval()
    return _batched(model.features, images, batch_size).double().numpy()


def classifier_predictions(model: CifarClassifier, images, batch_size: int = 500) -> np.ndarray:
    """Predicted class indices (int64 numpy, (N,))."""
    model.eval()
    return _batched(model.logits, images, batch_size).argmax(1).numpy()


# --------------------------------------------------------------------------------------------
# Data (a small private loader: decoded once into one uint8 tensor)
# --------------------------------------------------------------------------------------------

def load_imagefolder_uint8(root, image_size: int = 32, limit_per_class: Optional[int] = None):
    """Read an ImageFolder tree (``root/<class>/<img>``, classes sorted = labels) into
    ``(images uint8 (N,3,S,S), labels int64 (N,), class_names)``."""
    from PIL import Image

    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected an ImageFolder tree root/<class>/<image>)")
    imgs, labels = [], []
    for ci, c in enumerate(classes):
        files = list_image_files(root / c)
        if limit_per_class:
            files = files[:limit_per_class]
        for p in files:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (image_size, image_size):
                    im = im.resize((image_size, image_size), Image.BICUBIC)
                imgs.append(np.asarray(im, dtype=np.uint8))
            labels.append(ci)
    if not imgs:
        raise ValueError(f"{root}: no images found")
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.long), classes


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with ``pad``-pixel reflect padding + random horizontal flip, on a float batch."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    # gather crops with one index operation: rows/cols per sample
    ar_h = torch.arange(h)
    ar_w = torch.arange(w)
    rows = (dy[:, None] + ar_h[None]).view(b, 1, h, 1).expand(b, c, h, w + 2 * pad)
    xr = torch.gather(xp, 2, rows)
    cols = dx[:, None] + ar_w[None]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    cols = cols.view(b, 1, 1, w).expand(b, c, h, w)
    return torch.gather(xr, 3, cols)


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_classifier` (written into ``classifier.json``)."""

    epochs: int = 9
    batch_size: int = 512
    lr: float = 0.4  # peak learning rate (SGD, Nesterov), for batch_size 512
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    warmup_frac: float = 0.25  # one-cycle: linear warm-up fraction, then linear decay to 0
    mixed_precision: str = "auto"  # precision.CHOICES; CPU autocast only where bf16 is faster here
    seed: int = 0
    widths: tuple = (32, 64, 128, 256)


def _lr_at(step: int, total: int, peak: float, warmup_frac: float) -> float:
    w = max(1, int(total * warmup_frac))
    if step < w:
        return peak * (step + 1) / w
    return peak * max(0.0, (total - step) / max(1, total - w))


@torch.no_grad()
def evaluate_accuracy(model: CifarClassifier, images_u8: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 1000, autocast: bool = False) -> float:
    """Top-1 accuracy on uint8 images (no test-time augmentation)."""
    model.eval()
    preds = _batched(model.logits, images_u8, batch_size, autocast=autocast).argmax(1)
    return float((preds == labels).float().mean())


def _resolve_training_precision(model: CifarClassifier, cfg: TrainConfig):
    """``--mixed-precision`` on the CPU; the probe is one forward+backward of a training batch."""
    from .precision import resolve_precision

    def probe(dtype):
        model.eval()                     # timing only: leave the BatchNorm statistics untouched
        x = torch.zeros(cfg.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(x)
        out.float().sum().backward()
        model.zero_grad(set_to_none=True)
        model.train()

    return resolve_precision(cfg.mixed_precision, "cpu", probe, f"classifier-train:{tuple(cfg.widths)}:{cfg.batch_size}")


def train_classifier(train_images: torch.Tensor, train_labels: torch.Tensor, cfg: TrainConfig,
                     val_images: Optional[torch.Tensor] = None, val_labels: Optional[torch.Tensor] = None,
                     log: Callable[[str], None] = print, max_steps: Optional[int] = None) -> CifarClassifier:
    """Train a :class:`CifarClassifier` on uint8 images (N,3,32,32) in memory (see module docstring)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = CifarClassifier(ClassifierConfig(widths=tuple(cfg.widths)))
    model = model.to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for n_, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    n = len(train_images)
    steps_per_epoch = n // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    if max_steps is not None:
        total = min(total, max_steps)
    precision = _resolve_training_precision(model, cfg)
    log(f"precision: {precision.mode} ({precision.reason})")
    amp = precision.mode == "bf16"
    mean = model.mean
    std = model.std
    step = 0
    t0 = time.time()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        run_loss, run_acc, seen = 0.0, 0.0, 0
        for i in range(steps_per_epoch):
            if step >= total:
                break
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = train_images[idx].float().div_(255.0)
            x = _augment(x, gen)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            y = train_labels[idx]
            lr = _lr_at(step, total, cfg.lr, cfg.warmup_frac)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                out = model(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            run_loss += float(loss.detach()) * len(y)
            run_acc += float((out.argmax(1) == y).sum())
            seen += len(y)
            if step % 20 == 0:
                el = time.time() - t0
                log(f"epoch {epoch} step {step}/{total} loss {run_loss / seen:.4f} "
                    f"train_acc {run_acc / seen:.4f} lr {lr:.4f} {seen / max(1e-9, el) if epoch == 0 else step * cfg.batch_size / el:.0f} img/s elapsed {el:.0f}s")
        msg = f"end epoch {epoch}: train_loss {run_loss / max(1, seen):.4f} train_acc {run_acc / max(1, seen):.4f} elapsed {time.time() - t0:.0f}s"
        if val_images is not None and (epoch == cfg.epochs - 1 or step >= total):
            acc = evaluate_accuracy(model, val_images, val_labels, autocast=amp)
            msg += f" val_acc {acc:.4f}"
        log(msg)
        if step >= total:
            break
    model = model.to(memory_format=torch.contiguous_format)
    return model.eval()


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Command line: ``python -m rdpm_gddcm.classifier`` (the classifier stage of ``train/cifar10.sh``)."""
    import argparse

    p = argparse.ArgumentParser(
        description="Train the small CIFAR-10 proxy classifier used for the 'CIFAR-feature FD' and "
                    "'class accuracy' CPU proxy metrics (not FID). Writes classifier.safetensors (fp16), "
                    "classifier.json, metrics.json and log.txt to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-path", default="../shared/data/cifar10",
                   help="ImageFolder root holding train/ and val/ (classes in alphabetical order = labels)")
    p.add_argument("--epochs", type=int, default=9, help="training epochs")
    p.add_argument("--batch-size", type=int, default=512, help="batch size")
    p.add_argument("--lr", type=float, default=0.4, help="peak learning rate of the one-cycle schedule (SGD Nesterov)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (conv/linear weights only)")
    p.add_argument("--label-smoothing", type=float, default=0.2, help="cross-entropy label smoothing")
    p.add_argument("--widths", default="32,64,128,256", help="channel widths: stem,stage1,stage2,stage3")
    p.add_argument("--out", default="assets/cifar10-classifier", help="output directory")
    p.add_argument("--mixed-precision", choices=["auto", "no", "bf16"], default="auto", help=PRECISION_HELP)
    p.add_argument("--num-threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (for throughput checks)")
    p.add_argument("--limit-per-class", type=int, default=None, help="use only this many training images per class")
    args = p.parse_args(argv)

    torch.set_num_threads(args.num_threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "log.txt", "a")

    def log(s):
        line = f"[{time.strftime('%H:%M:%S')}] {s}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    t_start = time.time()
    data = Path(args.data_path)
    log(f"args: {vars(args)}")
    xtr, ytr, classes = load_imagefolder_uint8(data / "train", limit_per_class=args.limit_per_class)
    xva, yva, _ = load_imagefolder_uint8(data / "val")
    log(f"loaded {len(xtr)} train / {len(xva)} val images in {time.time() - t_start:.0f}s; classes {classes}")
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                       label_smoothing=args.label_smoothing, mixed_precision=args.mixed_precision, seed=args.seed,
                       widths=tuple(int(w) for w in args.widths.split(",")))
    model = train_classifier(xtr, ytr, tcfg, xva, yva, log=log, max_steps=args.max_steps)
    train_wall = time.time() - t_start
    # Final accuracy on all val images, measured with the shipped fp16 weights loaded back in fp32.
    save_classifier(model, out, extra={"class_names": classes})
    loaded = load_classifier(out)
    val_acc = evaluate_accuracy(loaded, xva, yva)
    total_wall = time.time() - t_start
    tc = asdict(tcfg)
    tc["widths"] = list(tc["widths"])
    result = {
        "val_accuracy": val_acc,
        "val_images": len(xva),
        "train_images": len(xtr),
        "epochs": args.epochs,
        "parameters": num_parameters(loaded),
        "file_size_bytes": (out / WEIGHTS_NAME).stat().st_size,
        "train_wall_seconds": round(train_wall, 1),
        "total_wall_seconds": round(total_wall, 1),
        "num_threads": args.num_threads,
        "train_config": tc,
        "weights_dtype": "float16",
        "note": "val accuracy measured on the shipped fp16 weights loaded as fp32, no test-time augmentation",
    }
    save_classifier(loaded, out, extra={"class_names": classes, "train_config": tc, "val_accuracy": val_acc})
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out / "metrics.json")
    log(f"done: {json.dumps(result)}")
    logf.close()
    return result


if __name__ == "__main__":
    main()
