"""Atomic writes (rdpm_gddcm.files): the umask's permissions, nothing left behind on failure."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from rdpm_gddcm.files import atomic_path, save_npy_atomic, write_bytes_atomic, write_json_atomic


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        for p in (write_json_atomic(tmp_path / "a.json", {"x": 1}), write_bytes_atomic(tmp_path / "b.bin", b"1"),
                  save_npy_atomic(tmp_path / "c.npy", np.zeros(3))):
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, p
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "f.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text().strip().startswith("{") and '"v": 1' in target.read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]
