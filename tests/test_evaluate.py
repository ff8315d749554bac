"""rdpm-eval end to end (torch-fidelity with a stand-in Inception weights file), reference-statistics
caching, the CPU proxy metrics, clear errors on bad input, and the atomic metrics.json.

The stand-in weights: torch-fidelity's own FeatureExtractorInceptionV3 architecture with random
(Kaiming) weights, saved as the plain state dict torch-fidelity loads from
``feature_extractor_weights_path``. Its numbers are meaningless; the code path is the real one.
The fast tests use ``--fid-feature-layer 64`` because torch-fidelity's FID on 2048-d pool3
statistics spends ~25 s in one ``np.linalg.eigvals`` on one CPU thread; the default 2048 path is
the ``slow``-marked test.
"""
import json
import math
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from rdpm_gddcm import evaluate as ev
from rdpm_gddcm import fidelity
from rdpm_gddcm.classifier import (CifarClassifier, ClassifierConfig, TrainConfig, _augment, classifier_predictions,
                                   load_classifier, save_classifier, train_classifier)

torch.set_num_threads(1)


# ------------------------------------------------------------------ fixtures / helpers
@pytest.fixture(scope="module")
def standin_weights(tmp_path_factory):
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    path = tmp_path_factory.mktemp("inception") / "standin-inception.pth"
    with mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None), \
            mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}):
        model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):  # keep activations O(1) through the depth
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
    torch.save(model.state_dict(), path)
    return path


def _write_images(folder: Path, n: int, seed: int, size=16, classes=("a", "b"), ext="png", smooth=False):
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = folder / classes[i % len(classes)] if classes else folder
        d.mkdir(parents=True, exist_ok=True)
        if smooth:
            arr = np.broadcast_to(rng.integers(0, 256, (1, 1, 3)), (size, size, 3)).astype(np.uint8)
        else:
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(d / f"{i:06d}.{ext}")
    return folder


def _run(argv, capsys):
    rc = ev.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _run_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        ev.main([str(a) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rdpm-eval: error: ")  # one clear line
    return err[0]


def _random_classifier(tmp_path, seed=0):
    torch.manual_seed(seed)
    model = CifarClassifier(ClassifierConfig(widths=(8, 16, 16, 32)))
    d = tmp_path / "clf"
    save_classifier(model, d)
    return d


# ------------------------------------------------------------------ torch-fidelity end to end
def test_torch_fidelity_end_to_end_and_stats_cache(tmp_path, standin_weights, capsys):
    samples = _write_images(tmp_path / "samples", 10, seed=1, classes=None)
    ref = _write_images(tmp_path / "ref", 10, seed=2, smooth=True)  # an ImageFolder tree
    (samples / "grid.png").write_bytes((samples / "000000.png").read_bytes())  # rdpm-sample's grid: skipped
    out = tmp_path / "out"
    rc, stdout, _ = _run(["--samples", samples, "--reference", ref, "--inception-weights", standin_weights,
                          "--metrics", "fid,isc,kid,prc", "--prc-feature-extractor", "inception-v3-compat",
                          "--fid-feature-layer", "64", "--out", out, "--num-threads", "1"], capsys)
    assert rc == 0
    res = json.loads((out / "metrics.json").read_text())
    m = res["metrics"]
    for k in ("fid_layer64", "isc_mean", "isc_std", "kid_mean", "kid_std", "precision", "recall", "f_score"):
        assert k in m and math.isfinite(m[k]), k
    assert "fid" not in m  # layer 64 is not standard FID and is not called so
    assert m["fid_layer64"] > 0 and m["isc_mean"] >= 1 - 1e-6
    assert res["num_samples"] == 10 and res["num_reference"] == 10
    assert res["torch_fidelity"]["weights_sha256"] and res["torch_fidelity"]["torch_fidelity_version"]
    assert "fid_layer64" in stdout and "isc_mean" in stdout
    # reference statistics cached next to the reference, with provenance
    cache = tmp_path / "ref.fid-stats.npz"
    prov = json.loads((tmp_path / "ref.fid-stats.json").read_text())
    assert cache.is_file() and prov["num_images"] == 10 and prov["source"] == str(ref.resolve())
    assert prov["weights_sha256"] == fidelity.file_sha256(standin_weights) and prov["feature_layer"] == "64"
    assert prov["torch_fidelity_version"] == res["torch_fidelity"]["torch_fidelity_version"]

    # The set against itself, from the cached statistics: ~0.
    rc, _, _ = _run(["--samples", ref, "--reference", ref, "--inception-weights", standin_weights, "--metrics", "fid",
                     "--fid-feature-layer", "64", "--out", out], capsys)
    res = json.loads((out / "metrics.json").read_text())
    assert res["torch_fidelity"]["reference_stats"].startswith("cached")
    assert abs(res["metrics"]["fid_layer64"]) < 1e-6 * max(1.0, m["fid_layer64"])

    # The same with the statistics file itself as --reference; KID needs features: skipped with a note.
    rc, _, _ = _run(["--samples", ref, "--reference", cache, "--inception-weights", standin_weights,
                     "--metrics", "fid,kid", "--fid-feature-layer", "64", "--out", out], capsys)
    res = json.loads((out / "metrics.json").read_text())
    assert res["reference_kind"] == "stats" and abs(res["metrics"]["fid_layer64"]) < 1e-6 * max(1.0, m["fid_layer64"])
    assert "kid_mean" not in res["metrics"] and any("kid skipped" in n for n in res["notes"])

    # Statistics of another layer are refused, not silently compared.
    err = _run_error(["--samples", ref, "--reference", cache, "--inception-weights", standin_weights,
                      "--metrics", "fid"], capsys)
    assert "layer 64" in err and "--fid-feature-layer" in err


def test_samples_are_scored_at_the_reference_resolution(tmp_path, standin_weights, capsys):
    """64 px samples that are 2x nearest-neighbour copies of the 32 px reference: scored at the reference's
    32 px (the default) they are the reference itself (FID ~0); scored as they are, they are not."""
    ref = _write_images(tmp_path / "ref", 10, seed=2, size=32, classes=None)
    arr = np.stack([np.asarray(Image.open(f)) for f in sorted(ref.glob("*.png"))])
    np.savez(tmp_path / "s.npz", arr_0=arr.repeat(2, axis=1).repeat(2, axis=2))
    base = ["--samples", tmp_path / "s.npz", "--reference", ref, "--inception-weights", standin_weights, "--metrics",
            "fid", "--fid-feature-layer", "64", "--no-stats-cache", "--out", tmp_path / "out"]
    _run(base, capsys)
    res = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert res["sample_size"] == [64, 64] and res["scored_size"] == [32, 32]
    assert any("scored at 32x32" in n for n in res["notes"]) and abs(res["metrics"]["fid_layer64"]) < 1e-6
    _run(base + ["--fid-image-size", "none"], capsys)
    res = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert res["scored_size"] == [64, 64] and res["metrics"]["fid_layer64"] > 1e-3
    assert "--fid-image-size" in _run_error(base + ["--fid-image-size", "big"], capsys)


@pytest.mark.slow
def test_default_fid_2048_with_adm_style_reference_stats(tmp_path, standin_weights, capsys):
    """Standard pool3 FID through calculate_metrics, then from an ADM-style npz (mu/sigma + arr_0)."""
    ref = _write_images(tmp_path / "ref", 10, seed=2, smooth=True)
    out = tmp_path / "out"
    _run(["--samples", ref, "--reference", ref, "--inception-weights", standin_weights, "--metrics", "fid",
          "--out", out, "--no-stats-cache"], capsys)
    fid_self = json.loads((out / "metrics.json").read_text())["metrics"]["fid"]
    assert abs(fid_self) < 1e-3
    z = np.load(next(tmp_path.glob("*.fid-stats.npz"))) if list(tmp_path.glob("*.fid-stats.npz")) else None
    assert z is None  # --no-stats-cache wrote nothing
    _run(["--samples", ref, "--reference", ref, "--inception-weights", standin_weights, "--metrics", "fid",
          "--out", out], capsys)
    z = np.load(tmp_path / "ref.fid-stats.npz")
    arr = np.stack([np.asarray(Image.open(p)) for p in sorted(ref.rglob("*.png"))])
    np.savez(tmp_path / "VIRTUAL_ref.npz", arr_0=arr, mu=z["mu"], sigma=z["sigma"])
    _run(["--samples", ref, "--reference", tmp_path / "VIRTUAL_ref.npz", "--inception-weights", standin_weights,
          "--metrics", "fid", "--out", out], capsys)
    res = json.loads((out / "metrics.json").read_text())
    assert abs(res["metrics"]["fid"]) < 1e-3 and res["torch_fidelity"]["reference_stats"].startswith("from")


# ------------------------------------------------------------------ weights errors
def test_missing_inception_weights_names_the_flag(tmp_path, capsys):
    samples = _write_images(tmp_path / "s", 4, seed=0, classes=None)
    err = _run_error(["--samples", samples, "--reference", samples, "--inception-weights",
                      tmp_path / "nope" / "weights.pth", "--metrics", "fid"], capsys)
    assert "--inception-weights" in err and "pt_inception-2015-12-05" in err and "not found" in err
    assert ev.INCEPTION_FILE in err
    torch.save({"something": torch.zeros(3)}, tmp_path / "wrong.pth")
    err = _run_error(["--samples", samples, "--reference", samples, "--inception-weights", tmp_path / "wrong.pth",
                      "--metrics", "isc"], capsys)
    assert "not torch-fidelity's InceptionV3 state dict" in err and "--inception-weights" in err
    assert not (tmp_path / "s.fid-stats.npz").exists()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("case", ["empty", "no_arr0", "float", "nan", "nchw", "gray_array", "gray_png", "sizes",
                                  "corrupt", "missing"])
def test_bad_input_one_clear_error(tmp_path, capsys, case):
    bad = tmp_path / "bad"
    ref = _write_images(tmp_path / "ref", 3, seed=0, classes=None)
    if case == "empty":
        bad.mkdir()
        want = "no PNG/JPG images"
    elif case == "no_arr0":
        bad = tmp_path / "bad.npz"
        np.savez(bad, images=np.zeros((2, 8, 8, 3), np.uint8))
        want = "no 'arr_0'"
    elif case == "float":
        bad = tmp_path / "bad.npz"
        np.savez(bad, arr_0=np.zeros((2, 8, 8, 3), np.float32))
        want = "dtype is float32"
    elif case == "nan":
        bad = tmp_path / "bad.npz"
        a = np.zeros((2, 8, 8, 3), np.float32)
        a[0, 0, 0, 0] = np.nan
        np.savez(bad, arr_0=a)
        want = "NaN"
    elif case == "nchw":
        bad = tmp_path / "bad.npz"
        np.savez(bad, arr_0=np.zeros((2, 3, 8, 8), np.uint8))
        want = "NHWC"
    elif case == "gray_array":
        bad = tmp_path / "bad.npz"
        np.savez(bad, arr_0=np.zeros((2, 8, 8), np.uint8))
        want = "grayscale"
    elif case == "gray_png":
        bad.mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad / "0.png")
        want = "grayscale"
    elif case == "sizes":
        _write_images(bad, 1, seed=0, size=8, classes=None)
        Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(bad / "zz.png")
        want = "all images must have one size"
    elif case == "corrupt":
        bad.mkdir()
        (bad / "0.png").write_bytes(b"not a png")
        want = "cannot read image"
    else:
        want = "no such file or folder"
    err = _run_error(["--samples", bad, "--reference", ref, "--metrics", "fid", "--out", tmp_path / "out"], capsys)
    assert want in err and "--samples" in err and str(bad) in err
    assert not (tmp_path / "out" / "metrics.json").exists()


# ------------------------------------------------------------------ proxy metrics
def test_proxy_metrics_are_labelled_and_not_fid(tmp_path, capsys):
    clf = _random_classifier(tmp_path)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    model = load_classifier(clf)
    labels = classifier_predictions(model, torch.from_numpy(imgs).permute(0, 3, 1, 2))
    np.savez(tmp_path / "samples.npz", arr_0=imgs, labels=labels)
    ref = _write_images(tmp_path / "ref", 20, seed=5, size=32, smooth=True)
    out = tmp_path / "out"
    rc, stdout, _ = _run(["--samples", tmp_path / "samples.npz", "--reference", ref, "--metrics", "none",
                          "--proxy-classifier", clf, "--out", out], capsys)
    res = json.loads((out / "metrics.json").read_text())
    m = res["metrics"]
    assert set(m) == {"CIFAR-feature FD", "class accuracy"}
    assert m["CIFAR-feature FD"] > 0 and m["class accuracy"] == 1.0  # labels = the classifier's own predictions
    assert "not FID" in stdout and "CIFAR-feature FD" in stdout and "class accuracy" in stdout
    assert "not FID" in res["proxy"]["note"] or "not FID/IS" in res["proxy"]["note"]
    assert (tmp_path / "ref.cifar-feature-stats.npz").is_file()
    # the same set against itself: 0; no labels: a note, no number
    np.savez(tmp_path / "nolabels.npz", arr_0=imgs)
    _run(["--samples", tmp_path / "nolabels.npz", "--reference", tmp_path / "nolabels.npz", "--metrics", "none",
          "--proxy-classifier", clf, "--out", out, "--no-stats-cache"], capsys)
    res = json.loads((out / "metrics.json").read_text())
    assert abs(res["metrics"]["CIFAR-feature FD"]) < 1e-6 and "class accuracy" not in res["metrics"]
    assert any("class accuracy skipped" in n for n in res["notes"])
    # wrong number of labels: a clear error
    np.save(tmp_path / "labels.npy", np.zeros(5, np.int64))
    err = _run_error(["--samples", tmp_path / "nolabels.npz", "--metrics", "none", "--proxy-classifier", clf,
                      "--labels", tmp_path / "labels.npy"], capsys)
    assert "5 labels for 24 samples" in err
    err = _run_error(["--samples", tmp_path / "nolabels.npz", "--metrics", "none", "--proxy-classifier",
                      tmp_path / "missing-clf"], capsys)
    assert "--proxy-classifier" in err


def test_paired_reconstruction_metrics(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = rng.integers(20, 200, (4, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", arr_0=a)
    np.savez(tmp_path / "b.npz", arr_0=a + 5)
    out = tmp_path / "out"
    _run(["--samples", tmp_path / "a.npz", "--reference", tmp_path / "b.npz", "--metrics", "none", "--paired",
          "--out", out], capsys)
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert abs(m["psnr"] - 20 * math.log10(255 / 5)) < 1e-9 and 0 < m["ssim"] < 1


# ------------------------------------------------------------------ metrics.json is written atomically
def test_metrics_json_written_atomically(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", arr_0=np.full((2, 16, 16, 3), 7, np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("old")
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((str(src), str(dst)))
        assert Path(src).is_file() and json.loads(Path(src).read_text())  # complete before the rename
        assert (out / "metrics.json").read_text() == "old"  # the old file is untouched until then
        return real_replace(src, dst)

    with mock.patch.object(os, "replace", spy):
        _run(["--samples", tmp_path / "a.npz", "--reference", tmp_path / "a.npz", "--metrics", "none", "--paired",
              "--out", out], capsys)
    assert calls and calls[-1][1] == str(out / "metrics.json") and Path(calls[-1][0]).parent == out
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]  # no temp file left
    assert json.loads((out / "metrics.json").read_text())["metrics"]["ssim"] == 1.0


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        ev.main(["--help"])
    h = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: fid,isc,kid)" in h and "--inception-weights" in h and "not FID" in h


def test_stats_cache_location(tmp_path):
    ref = tmp_path / "data" / "val"
    ref.mkdir(parents=True)
    assert fidelity.stats_cache_path(ref, ".fid-stats.npz") == tmp_path / "data" / "val.fid-stats.npz"
    p = fidelity.stats_cache_path(ref, ".fid-stats.npz", tmp_path / "cache")
    assert p.parent == tmp_path / "cache" and p.name.startswith("val-") and p.name.endswith(".fid-stats.npz")


# ------------------------------------------------------------------ the classifier module
def test_classifier_roundtrip_and_training_step(tmp_path):
    torch.manual_seed(0)
    model = CifarClassifier(ClassifierConfig(widths=(8, 16, 16, 32))).eval()
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    f, lo = model.features_and_logits(x)
    assert f.shape == (5, 32) and lo.shape == (5, 10)
    assert torch.allclose(model.features(x.float() / 127.5 - 1), f, atol=1e-5)  # [-1,1] floats == uint8
    assert model.logits(torch.nn.functional.interpolate(x.float() / 127.5 - 1, size=64)).shape == (5, 10)
    save_classifier(model, tmp_path / "c")
    loaded = load_classifier(tmp_path / "c")
    assert torch.allclose(loaded.logits(x), lo, atol=0.05)  # fp16 storage
    assert json.loads((tmp_path / "c" / "classifier.json").read_text())["widths"] == [8, 16, 16, 32]
    g = torch.Generator().manual_seed(0)
    xa = _augment(torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8), g)
    assert xa.shape == (2, 3, 8, 8)
    xs = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    ys = torch.randint(0, 10, (64,))
    trained = train_classifier(xs, ys, TrainConfig(epochs=1, batch_size=32, widths=(8, 16, 16, 32)),
                               log=lambda s: None)
    assert trained.logits(xs[:4]).shape == (4, 10)


def test_read_only_reference_caches_elsewhere(tmp_path, capsys, monkeypatch):
    """A reference whose folder is marked read-only (like ../shared) is never written next to."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    clf = _random_classifier(tmp_path)
    ro = tmp_path / "ro"
    ref = _write_images(ro / "val", 6, seed=3, size=32)
    np.savez(tmp_path / "s.npz", arr_0=np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    os.chmod(ro, 0o555)
    try:
        args = ["--samples", tmp_path / "s.npz", "--reference", ref, "--metrics", "none", "--proxy-classifier", clf,
                "--out", tmp_path / "out"]
        _run(args, capsys)
        assert sorted(p.name for p in ro.iterdir()) == ["val"]
        cached = list((tmp_path / "xdg" / "rdpm_gddcm" / "fid-stats").glob("val-*.cifar-feature-stats.npz"))
        assert len(cached) == 1
        _run(args, capsys)
        res = json.loads((tmp_path / "out" / "metrics.json").read_text())
        assert res["proxy"]["reference_stats"] == f"cached {cached[0]}"
    finally:
        os.chmod(ro, 0o755)
