"""Atomic writes (rdpm_gddcm.files): the umask's permissions, nothing left behind on failure."""
from __future__ import annotations

import os
import stat

import numpy as np
import torch
import pytest

from rdpm_gddcm.files import atomic_path, save_npy_atomic, write_bytes_atomic, write_json_atomic


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        from safetensors.torch import save_file
        with atomic_path(tmp_path / "d.safetensors") as tmp:      # safetensors itself creates files 0600
            save_file({"w": torch.zeros(2)}, str(tmp))
        for p in (write_json_atomic(tmp_path / "a.json", {"x": 1}), write_bytes_atomic(tmp_path / "b.bin", b"1"),
                  save_npy_atomic(tmp_path / "c.npy", np.zeros(3)), tmp_path / "d.safetensors"):
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, p
    finally:
        os.umask(old)


def test_saved_backbones_are_atomic_and_follow_the_umask(tmp_path, make_tiny_backbone):
    """Both backbone kinds write through atomic_path: umask permissions, no temporary left, loadable."""
    from rdpm_gddcm.backbones import LinearGaussianBackbone, load_backbone
    from rdpm_gddcm.families import Family
    old = os.umask(0o022)
    try:
        make_tiny_backbone(tmp_path / "net")
        LinearGaussianBackbone.fit(torch.randn(64, 3, 4, 4), Family("vp-discrete")).save(tmp_path / "lg")
    finally:
        os.umask(old)
    for d in ("net", "lg"):
        assert sorted(p.name for p in (tmp_path / d).iterdir()) == ["backbone.json", "backbone.safetensors"]
        for p in (tmp_path / d).iterdir():
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, p
        load_backbone(str(tmp_path / d))


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "f.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text().strip().startswith("{") and '"v": 1' in target.read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def test_list_image_files_is_the_one_lister(tmp_path):
    """Recursive, sorted by relative path, image extensions only (any case), hidden files and
    folders skipped, and a caller's own filter (rdpm-eval skips its preview grids)."""
    from rdpm_gddcm.files import list_image_files
    for rel in ["b/2.png", "b/10.JPG", "a.webp", ".hidden.png", ".cache/x.png", "b/notes.txt", "grid.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    names = [str(p.relative_to(tmp_path)) for p in list_image_files(tmp_path)]
    assert names == ["a.webp", "b/10.JPG", "b/2.png", "grid.png"]
    assert "grid.png" not in [p.name for p in list_image_files(tmp_path, skip=lambda f: f.startswith("grid"))]
