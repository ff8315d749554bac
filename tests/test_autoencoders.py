"""Autoencoders (rdpm_gddcm/autoencoders.py, rdpm_gddcm/tae.py; DESIGN "Three swappable parts").

Tiny random diffusers VAEs stand in for SD-VAE (no hub here); the real taef2 weights are used
when ../shared is present (conftest.taef2_dir skips otherwise)."""
from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from rdpm_gddcm import tae
from rdpm_gddcm.autoencoders import (DiffusersAutoencoder, PixelAutoencoder, TAEAutoencoder,
                                     load_autoencoder)
from rdpm_gddcm.data import ImageFolderDataset


def _images(b=2, s=16, seed=0):
    return torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _tiny_kl(path, scaling_factor=0.5, seed=0):
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    m = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                      up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                      norm_num_groups=8, layers_per_block=1, scaling_factor=scaling_factor)
    m.save_pretrained(str(path))
    return m


def _tiny_taesd(path, scaling_factor=0.7):
    from diffusers import AutoencoderTiny
    torch.manual_seed(0)
    m = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8),
                        num_encoder_blocks=(1, 1, 1), num_decoder_blocks=(1, 1, 1),
                        latent_channels=4, scaling_factor=scaling_factor)
    m.save_pretrained(str(path))
    return m


# ---------------------------------------------------------------- pixels

def test_pixels_round_trip_exact():
    ae = load_autoencoder("pixels")
    assert isinstance(ae, PixelAutoencoder)
    x = _images()
    z = ae.encode(x)
    assert z.dtype == torch.float32 and torch.equal(z, x) and torch.equal(ae.decode(z), x)
    assert ae.latent_shape(32) == (3, 32, 32) and ae.downsample == 1
    assert ae.identity() == {"name": "pixels", "sha256": None, "scaling_factor": 1.0,
                             "latent_channels": 3, "downsample": 1}
    assert not any(True for _ in ae.parameters()) and not ae.training


# ---------------------------------------------------------------- diffusers

def test_diffusers_kl_and_pipeline_subfolder(tmp_path):
    ref = _tiny_kl(tmp_path / "kl")
    ae = load_autoencoder("hf:" + str(tmp_path / "kl"))
    assert isinstance(ae, DiffusersAutoencoder) and ae.class_name == "AutoencoderKL"
    assert ae.scaling_factor == 0.5 and ae.downsample == 2 and ae.latent_channels == 4
    x = _images()
    z = ae.encode(x)
    assert z.shape == (2, 4, 8, 8) and ae.latent_shape(16) == (4, 8, 8)
    assert torch.equal(z, ae.encode(x))  # posterior mode: deterministic
    with torch.no_grad():
        raw = ref.eval().encode(x).latent_dist.mode()
    assert torch.allclose(z, raw * 0.5, atol=1e-5)
    y = ae.decode(z)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert all(not p.requires_grad for p in ae.parameters())
    ident = ae.identity()
    assert ident["scaling_factor"] == 0.5 and len(ident["sha256"]) == 64

    shutil.copytree(tmp_path / "kl", tmp_path / "pipe" / "vae")  # a full pipeline dir
    ae2 = load_autoencoder("hf:" + str(tmp_path / "pipe"))
    assert ae2.identity()["sha256"] == ident["sha256"]

    _tiny_kl(tmp_path / "kl_other", seed=1)  # different weights -> different identity
    assert load_autoencoder("hf:" + str(tmp_path / "kl_other")).identity()["sha256"] \
        != ident["sha256"]


def test_diffusers_tiny(tmp_path):
    _tiny_taesd(tmp_path / "tiny")
    ae = load_autoencoder("hf:" + str(tmp_path / "tiny"))
    assert ae.class_name == "AutoencoderTiny" and ae.scaling_factor == 0.7
    assert ae.downsample == 4 and ae.latent_shape(32) == (4, 8, 8)
    z = ae.encode(_images(s=32))
    assert z.shape == (2, 4, 8, 8)
    assert ae.decode(z).shape == (2, 3, 32, 32)


def test_diffusers_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_autoencoder("hf:" + str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_autoencoder("hf:" + str(tmp_path / "empty"))
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(ValueError, match="UNet2DModel"):
        load_autoencoder("hf:" + str(tmp_path / "unet"))


# ---------------------------------------------------------------- TAE family

def test_tae_random_weights_build_and_round_trip_shapes(tmp_path):
    enc, dec = tae.build_tae(latent_channels=32)
    ae = TAEAutoencoder(enc, dec, name="taef2")
    x = _images(s=16)
    z = ae.encode(x)
    assert z.shape == (2, 32, 2, 2) and ae.latent_shape(64) == (32, 8, 8)
    assert ae.decode(z).shape == (2, 3, 16, 16)
    # the released key layout: Sequential indices, weights at the documented positions
    keys = set(enc.state_dict())
    assert {"0.weight", "2.weight", "11.pool.1.weight", "14.bias"} <= keys and "2.bias" not in keys
    assert {"1.weight", "3.pool.3.weight", "19.bias"} <= set(dec.state_dict())
    # save in the released format (fp16 .pth) and load back via tae:DIR
    torch.save({k: v.half() for k, v in enc.state_dict().items()}, tmp_path / "mytae_encoder.pth")
    torch.save({k: v.half() for k, v in dec.state_dict().items()}, tmp_path / "mytae_decoder.pth")
    ae2 = load_autoencoder(f"tae:{tmp_path}")
    assert ae2.name == "mytae" and ae2.latent_channels == 32
    other = tae.build_tae(latent_channels=4)[0]  # latent channels are read from the weights
    torch.save(other.state_dict(), tmp_path / "four_encoder.pth")
    torch.save(tae.TAEDecoder(4).state_dict(), tmp_path / "four_decoder.pth")
    assert load_autoencoder(f"tae:{tmp_path}/four_encoder.pth").latent_channels == 4
    with pytest.raises(FileNotFoundError, match="exactly one"):
        load_autoencoder(f"tae:{tmp_path}")  # two TAEs in one dir: ambiguous


def test_tae_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"taef2 weights not found at .*nope.*taef2:DIR"):
        load_autoencoder(f"taef2:{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError, match="taef2_decoder.pth"):
        torch.save(tae.TAEEncoder().state_dict(), tmp_path / "taef2_encoder.pth")
        load_autoencoder(f"taef2:{tmp_path}")
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "taef2_decoder.pth")
    with pytest.raises(ValueError, match="not loadable TAE weights"):
        load_autoencoder(f"taef2:{tmp_path}")


def test_taef2_real_weights_psnr(taef2_dir, cifar10_dir):
    ae = load_autoencoder(f"taef2:{taef2_dir}")
    # strict key match against the released files (load_state_dict(strict=True) in build_tae,
    # re-checked here so a silent non-strict change would fail)
    sd = tae.load_state_dict_file(taef2_dir / "taef2_encoder.pth")
    assert set(sd) == set(ae.encoder.state_dict())
    assert ae.identity()["name"] == "taef2" and ae.latent_channels == 32
    ds = ImageFolderDataset(str(cifar10_dir / "val"), 32)
    x = torch.stack([ds[i][0] for i in range(0, 5000, 5000 // 16)][:16])
    up = F.interpolate(x, size=64, mode="bicubic", align_corners=False).clamp(-1, 1)
    z = ae.encode(up)
    assert z.shape == (16, 32, 8, 8)
    rec = F.interpolate(ae.decode(z), size=32, mode="area")
    q = lambda t: ((t + 1) * 127.5).round().clamp(0, 255)  # noqa: E731  (compare in uint8)
    mse = ((q(rec) - q(x)) ** 2).mean(dim=(1, 2, 3))
    psnr = (10 * torch.log10(255.0 ** 2 / mse)).mean().item()
    assert psnr >= 30.0, psnr


# ---------------------------------------------------------------- bad input

def test_bad_inputs_name_the_problem():
    ae = TAEAutoencoder(*tae.build_tae(latent_channels=8), name="taef2")
    with pytest.raises(ValueError, match=r"unknown autoencoder spec 'vqgan:x'.*pixels.*hf:"):
        load_autoencoder("vqgan:x")
    with pytest.raises(ValueError, match="needs a location"):
        load_autoencoder("taef2")
    with pytest.raises(ValueError, match=r"\(B,3,H,W\).*\(3, 16, 16\)"):
        ae.encode(torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B,3,H,W\).*grayscale"):
        ae.encode(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\[-1,1\].*127.5"):
        ae.encode(torch.full((1, 3, 16, 16), 255.0))
    with pytest.raises(ValueError, match="dtype"):
        ae.encode(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    bad = torch.zeros(1, 3, 16, 16)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ae.encode(bad)
    with pytest.raises(ValueError, match=r"12x12 is not divisible .* factor 8"):
        ae.encode(torch.zeros(1, 3, 12, 12))
    with pytest.raises(ValueError, match="not divisible"):
        ae.latent_shape(36)
    with pytest.raises(ValueError, match=r"latent shaped \(B,8,h,w\)"):
        ae.decode(torch.zeros(1, 4, 2, 2))
    # mild resampling overshoot is accepted (clipped), not an error
    assert ae.encode(torch.full((1, 3, 16, 16), 1.05)).shape == (1, 8, 2, 2)
