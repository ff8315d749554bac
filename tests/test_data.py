"""Datasets and image files (rdpm_gddcm/data.py; DESIGN "Errors")."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from rdpm_gddcm.data import (CorruptImageError, ImageFolderDataset, ProceduralDataset,
                             build_dataset, load_image, save_image_grid, save_images, to_uint8)


def _write(path, img: Image.Image, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, format=fmt)


def _rgb(w, h, color=(200, 30, 60)):
    return Image.new("RGB", (w, h), color)


@pytest.fixture
def tree(tmp_path):
    """b_dog/ (2 images), a_cat/ (1 image + nested dir + non-image), c_gray/ (L, RGBA, P)."""
    root = tmp_path / "imgs"
    _write(str(root / "b_dog" / "1.jpg"), _rgb(40, 30))
    _write(str(root / "b_dog" / "0.PNG"), _rgb(30, 40, (10, 20, 30)), fmt="PNG")
    _write(str(root / "a_cat" / "sub" / "x.webp"), _rgb(16, 16))
    (root / "a_cat" / "notes.txt").write_text("not an image")
    _write(str(root / "c_gray" / "g.png"), Image.new("L", (20, 20), 128))
    _write(str(root / "c_gray" / "rgba.png"), Image.new("RGBA", (20, 20), (255, 0, 0, 0)))
    _write(str(root / "c_gray" / "p.bmp"), Image.new("P", (20, 20), 3))
    return root


def test_imagefolder_labels_shapes_and_rgb(tree):
    ds = ImageFolderDataset(str(tree), image_size=16)
    assert ds.classes == ["a_cat", "b_dog", "c_gray"] and ds.num_classes == 3
    assert len(ds) == 6  # notes.txt ignored, nested sub/ included, extensions case-insensitive
    labels = [ds[i][1] for i in range(len(ds))]
    assert labels == [0, 1, 1, 2, 2, 2]
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and isinstance(y, int)
        assert x.min() >= -1 and x.max() <= 1
    gray = ds[[p for p, _ in ds.samples].index(str(tree / "c_gray" / "g.png"))][0]
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])
    assert abs(gray.mean().item() - (128 / 127.5 - 1)) < 1e-6
    rgba = ds[[p for p, _ in ds.samples].index(str(tree / "c_gray" / "rgba.png"))][0]
    assert rgba.shape == (3, 16, 16) and torch.allclose(rgba[0], torch.ones(16, 16))


def test_resize_shorter_side_and_center_crop(tmp_path):
    # left half black, right half white, 60x30: shorter side 30 -> 16, width 32 -> crop 16
    a = np.zeros((30, 60, 3), np.uint8)
    a[:, 30:] = 255
    _write(str(tmp_path / "c" / "wide.png"), Image.fromarray(a))
    x = load_image(str(tmp_path / "c" / "wide.png"), 16)
    assert x.shape == (3, 16, 16)
    assert x[:, :, :6].max() < -0.9 and x[:, :, 10:].min() > 0.9  # the middle is kept


def test_exact_size_is_untouched(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    _write(str(tmp_path / "c" / "x.png"), Image.fromarray(a))
    x = load_image(str(tmp_path / "c" / "x.png"), 8)
    assert torch.equal(to_uint8(x).permute(1, 2, 0), torch.from_numpy(a))


def test_hflip_flips_some_and_is_a_mirror(tmp_path):
    a = np.zeros((8, 8, 3), np.uint8)
    a[:, :2] = 255
    _write(str(tmp_path / "c" / "x.png"), Image.fromarray(a))
    plain = ImageFolderDataset(str(tmp_path), 8)[0][0]
    ds = ImageFolderDataset(str(tmp_path), 8, hflip=True)
    torch.manual_seed(0)
    outs = [ds[0][0] for _ in range(20)]
    flipped = [o for o in outs if not torch.equal(o, plain)]
    assert 0 < len(flipped) < 20
    assert all(torch.equal(o, plain.flip(-1)) for o in flipped)


def test_corrupt_image_error_and_skip(tmp_path):
    _write(str(tmp_path / "c" / "0.png"), _rgb(8, 8))
    (tmp_path / "c" / "1.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    _write(str(tmp_path / "c" / "2.png"), _rgb(8, 8, (0, 0, 255)))
    ds = ImageFolderDataset(str(tmp_path), 8)  # listing does not decode: no error yet
    with pytest.raises(CorruptImageError) as e:
        ds[1]
    assert "1.jpg" in str(e.value) and "--skip-corrupt" in str(e.value)

    ds = ImageFolderDataset(str(tmp_path), 8, skip_corrupt=True)
    with pytest.warns(RuntimeWarning, match="1.jpg"):
        x, _ = ds[1]
    assert torch.equal(x, ds[2][0])  # deterministic substitute: the next readable index
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert torch.equal(ds[1][0], x)
    assert ds.num_skipped == 1


def test_truncated_image_is_corrupt(tmp_path):
    p = tmp_path / "c" / "t.jpg"
    _write(str(p), Image.fromarray(np.random.default_rng(0).integers(
        0, 256, (64, 64, 3), dtype=np.uint8)), fmt="JPEG")
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(CorruptImageError, match="t.jpg"):
        load_image(str(p), 32)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        ImageFolderDataset(str(tmp_path / "nope"), 8)
    with pytest.raises(FileNotFoundError, match="nope"):
        build_dataset(str(tmp_path / "nope"), 8)
    (tmp_path / "flat").mkdir()
    _write(str(tmp_path / "flat" / "x.png"), _rgb(8, 8))
    with pytest.raises(ValueError, match="no class subfolders"):
        ImageFolderDataset(str(tmp_path / "flat"), 8)
    (tmp_path / "emptycls" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="has no images"):
        ImageFolderDataset(str(tmp_path / "emptycls"), 8)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(str(tmp_path / "missing.png"), 8)


def test_procedural_deterministic_range_and_size():
    ds = ProceduralDataset(30, 24, num_classes=10, seed=3)
    assert len(ds) == 30 and ds.num_classes == 10 and len(ds.classes) == 10
    x, y = ds[13]
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32 and y == 3
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, ProceduralDataset(30, 24, 10, seed=3)[13][0])
    assert not torch.equal(x, ProceduralDataset(30, 24, 10, seed=4)[13][0])
    assert not torch.equal(x, ds[23][0])  # same class, different image
    assert ds[10][0].shape == (3, 24, 24) and ProceduralDataset(5, 48)[2][0].shape == (3, 48, 48)
    big = ProceduralDataset(30, 64, 10, seed=3)[13][0]  # same picture at another size
    small = torch.nn.functional.interpolate(big[None], size=24, mode="area")[0]
    assert (small - x).abs().mean() < 0.08


def test_procedural_classes_are_distinct():
    ds = ProceduralDataset(200, 16, num_classes=10)
    xs = torch.stack([ds[i][0] for i in range(200)])
    ys = torch.tensor([ds[i][1] for i in range(200)])
    means = torch.stack([xs[ys == c].mean(0) for c in range(10)])
    # nearest-class-mean classification on held-in data: the signature is strong
    d = torch.cdist(xs.flatten(1), means.flatten(1))
    assert (d.argmin(1) == ys).float().mean() > 0.9
    pair = torch.cdist(means.flatten(1), means.flatten(1))
    assert pair[~torch.eye(10, dtype=bool)].min() > 1.0


def test_build_dataset_dispatch(tree):
    ds = build_dataset("procedural:12", 8)
    assert isinstance(ds, ProceduralDataset) and len(ds) == 12 and ds.num_classes == 10
    assert len(build_dataset("procedural", 8)) == 10000
    with pytest.raises(ValueError, match="procedural:N"):
        build_dataset("procedural:abc", 8)
    ds = build_dataset(str(tree), 8, hflip=True, skip_corrupt=True)
    assert isinstance(ds, ImageFolderDataset) and ds.hflip and ds.skip_corrupt


def test_save_grid_and_images_atomic(tmp_path):
    x = torch.linspace(-1, 1, 5 * 3 * 4 * 6).reshape(5, 3, 4, 6)
    save_image_grid(x, str(tmp_path / "out" / "grid.png"), nrow=2)
    g = np.asarray(Image.open(tmp_path / "out" / "grid.png"))
    assert g.shape == (3 * (4 + 2) + 2, 2 * (6 + 2) + 2, 3)
    paths = [str(tmp_path / "out" / f"{i:06d}.png") for i in range(5)]
    save_images(x, paths)
    back = torch.stack([load_image(p, 4) for p in paths])  # shorter side 4: center crop
    assert torch.equal(to_uint8(back), to_uint8(x[:, :, :, 1:5]))
    assert sorted(os.listdir(tmp_path / "out")) == sorted(["grid.png"] + [os.path.basename(p)
                                                                         for p in paths])
    with pytest.raises(ValueError, match="paths"):
        save_images(x, paths[:2])
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        save_image_grid(x[0], str(tmp_path / "bad.png"))


def test_cifar10_val_tree(cifar10_dir):
    ds = ImageFolderDataset(str(cifar10_dir / "val"), 32)
    assert len(ds) == 5000 and ds.classes[0] == "airplane" and ds.classes[-1] == "truck"
    x, y = ds[4999]
    assert x.shape == (3, 32, 32) and y == 9
