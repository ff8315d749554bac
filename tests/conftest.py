"""Shared pytest fixtures.

``../shared`` (CIFAR-10 as ImageFolder, taef2 weights; DESIGN "This workplace's facts") sits next
to the repository here but not in a fresh clone: tests that need it use these fixtures and are
skipped, with the reason, when it is missing. Set ``RDPM_SHARED=/path/to/shared`` to point
elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SKIP_REASON = "needs ../shared (CIFAR-10 / taef2 weights); absent in a fresh clone"


def find_shared_dir() -> Path | None:
    """``$RDPM_SHARED`` if set, else ``<repo>/../shared``; None when it does not exist."""
    env = os.environ.get("RDPM_SHARED")
    path = Path(env) if env else REPO_ROOT.parent / "shared"
    return path if path.is_dir() else None


def _require(sub: str) -> Path:
    root = find_shared_dir()
    if root is None or not (root / sub).exists():
        where = root / sub if root is not None else (os.environ.get("RDPM_SHARED")
                                                     or REPO_ROOT.parent / "shared")
        pytest.skip(f"{SKIP_REASON} (looked for {where}; set RDPM_SHARED to override)")
    return root / sub


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared read-only material, or skip."""
    return _require(".")


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """``shared/data/cifar10`` (``train/``, ``val/`` ImageFolder trees), or skip."""
    return _require("data/cifar10")


@pytest.fixture(scope="session")
def taef2_dir() -> Path:
    """``shared/weights/taef2`` (taef2_encoder.pth / taef2_decoder.pth), or skip."""
    return _require("weights/taef2")


@pytest.fixture
def cli_error(capsys):
    """``cli_error(main, argv)``: run a command's ``main(argv)`` expecting bad-input handling: exit
    code 2 and exactly one ``PROG: error: ...`` line on stderr (progress bars aside). Returns that line."""
    def run(main, argv) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in argv])
        assert e.value.code == 2, e.value.code
        err = [ln for ln in capsys.readouterr().err.splitlines()
               if ln.strip() and "it/s]" not in ln and not ln.startswith("[20")]     # progress bars, log lines
        assert len(err) == 1 and ": error: " in err[0], err
        return err[0]
    return run


@pytest.fixture(scope="session")
def make_tiny_backbone():
    """``make(path, family="flow", seed=0)``: save a tiny random class-conditional pixel backbone
    (16 px, 10 classes) with the project's U-Net and return its folder (a real, if useless, denoiser)."""
    import torch

    from rdpm_gddcm.autoencoders import PixelAutoencoder
    from rdpm_gddcm.backbones import NetworkBackbone
    from rdpm_gddcm.families import Family
    from rdpm_gddcm.networks import UNet, UNetConfig

    def make(path, family="flow", seed=0):
        torch.manual_seed(seed)
        net = UNet(UNetConfig(in_channels=3, image_size=16, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                              attn_resolutions=(), dropout=0.0, num_classes=10))
        for p in net.parameters():          # random, non-zero output layers
            torch.nn.init.normal_(p, std=0.02)
        bb = NetworkBackbone(net.eval(), Family("vp-discrete" if family == "vp" else family))
        bb.save(path, extra={"autoencoder": PixelAutoencoder().identity(), "autoencoder_spec": "pixels",
                             "data": {"path": "procedural", "image_size": 16}})
        return path
    return make
