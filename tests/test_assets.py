"""The shipped weights under assets/ load and work without any training (issue: foundation)."""
import json
from pathlib import Path

import pytest
import torch

from rdpm_gddcm.backbones import load_backbone
from rdpm_gddcm.chain import own_sample

# results that depend on float kernels: CI reruns these under other ATEN_CPU_CAPABILITY values
pytestmark = pytest.mark.numerics

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.mark.parametrize("name,family", [("cifar10-pixels-vp", "vp-discrete"), ("cifar10-pixels-flow", "flow"),
                                         ("cifar10-taef2-edm", "ve"), ("cifar10-taef2-edm-long", "ve"),
                                         ("cifar10-taef2-edm-2m", "ve"),
                                         ("cifar10-taef2-consistency", "consistency")])
def test_shipped_backbone_samples_a_2x2_grid(name, family, request):
    """Each shipped backbone samples with its own sampler: 4 ODE steps, or 1 and 2 steps of the
    multistep consistency sampler for the consistency model."""
    d = ASSETS / name
    card = json.loads((d / "card.json").read_text())
    assert (d / "backbone.safetensors").stat().st_size <= 25 * 2 ** 20 and (d / "CARD.md").exists()
    bb = load_backbone(str(d))
    assert bb.family.name == family and bb.num_classes == 10
    assert card["denoising_mse"] and card["steps"] > 0
    meta = json.loads((d / "backbone.json").read_text())
    if meta["autoencoder"]["name"] == "pixels":
        from rdpm_gddcm.autoencoders import PixelAutoencoder
        ae = PixelAutoencoder()
    else:
        taef2 = request.getfixturevalue("taef2_dir")
        from rdpm_gddcm.autoencoders import load_autoencoder
        ae = load_autoencoder(f"taef2:{taef2}")
        assert ae.identity()["sha256"] == meta["autoencoder"]["sha256"]
    labels = torch.tensor([0, 1, 2, 3])
    for steps in ((1, 2) if family == "consistency" else (4,)):
        gens = [torch.Generator().manual_seed(i) for i in range(4)]
        noise = torch.stack([torch.randn(*bb.latent_shape, generator=g) for g in gens])
        imgs = ae.decode(own_sample(bb, noise, steps, labels, gens))
        assert imgs.shape[0] == 4 and imgs.shape[1] == 3 and torch.isfinite(imgs).all()
        assert imgs.min() >= -1 and imgs.max() <= 1 and imgs.std() > 0.05     # not a constant image
    if family == "consistency":
        assert {r["steps"] for r in card["fid"]} >= {1, 2}                      # the card reports 1- and 2-step FID


def test_shipped_classifier_loads_and_classifies():
    from rdpm_gddcm.classifier import load_classifier
    clf = load_classifier(str(ASSETS / "cifar10-classifier"))
    logits = clf.logits(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name,size", [("cifar10-generator", 64), ("cifar10-generator-pixels", 32)])
def test_shipped_generator_samples_a_2x2_grid(name, size, request):
    """The shipped RDPM generators + their backbones sample class-conditional images with no training,
    with the checkpoint's recorded sampling defaults, and in fp32 the same (seed, index) gives the same
    image whatever the batch (bf16 kernels depend on the batch, and a Gumbel-max pick can flip). The
    latent one needs ../shared's taef2 weights (its backbone names them)."""
    import numpy as np

    from rdpm_gddcm.sample import Sampler
    d = ASSETS / name
    assert (d / "generator.safetensors").stat().st_size <= 25 * 2 ** 20 and (d / "CARD.md").exists()
    meta = json.loads((d / "generator.json").read_text())
    if size == 64:
        taef2 = request.getfixturevalue("taef2_dir")
        s = Sampler(str(d), autoencoder=f"taef2:{taef2}", mixed_precision="no")
        assert meta["sampling"]["tuned_by"] and s.defaults["cfg_scale"] == meta["sampling"]["cfg_scale"]
    else:
        s = Sampler(str(d), mixed_precision="no")         # backbone resolved from generator.json
    imgs, tokens, timing = s.sample(np.arange(4), np.array([0, 1, 2, 3]), return_tokens=True)
    assert imgs.shape == (4, 3, size, size) and torch.isfinite(imgs).all() and imgs.std() > 0.05
    assert tokens.shape == (4, s.model.cfg.num_rows, s.model.cfg.num_blocks)
    one, _ = s.sample(np.array([2]), np.array([2]))
    assert torch.allclose(one[0], imgs[2], atol=1e-4)


def test_shipped_proxy_classifier_classifies_real_val_images(cifar10_dir):
    """The proxy behind 'class accuracy': on 500 real `val` images (50 per class) it must be far
    above chance (its card reports 88 % on all 5,000)."""
    from rdpm_gddcm.classifier import evaluate_accuracy, load_classifier, load_imagefolder_uint8
    x, y, _ = load_imagefolder_uint8(cifar10_dir / "val", limit_per_class=50)
    acc = evaluate_accuracy(load_classifier(ASSETS / "cifar10-classifier"), x, y)
    assert len(y) == 500 and acc >= 0.8, acc
