"""benchmarks/plots.py: each plot writes a non-empty PNG from a small synthetic results JSON and
skips (returns None) when its JSON is missing."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plots():
    spec = importlib.util.spec_from_file_location("bench_plots", REPO_ROOT / "benchmarks" / "plots.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fid_row(backbone, plan_label, kind, p, psnr, bpp, K=1024, N=100, grid=None):
    args = ["--num-steps", str(N), "--codebook-size", str(K)] + (["--grid", grid] if grid else [])
    return {"backbone_label": backbone, "plan_label": plan_label, "psnr": psnr, "ssim": 0.9, "bpp": bpp,
            "bits_per_image": int(bpp * 1024), "seconds_per_image": 1.0, "num_images": 4,
            "plan": {"kind": kind, "p": p}, "command_args": args}


SYNTHETIC = {
    "fidelity_table1": [_fid_row("VP-ε (ours)", "DDCM", "ddcm", 0.0, 28.0, 2.9, N=300),
                        _fid_row("flow (ours)", "p=0.5", "trajectory", 0.5, 32.0, 2.9, N=300)],
    "fidelity_ksweep": [_fid_row("VP-ε (ours)", f"p=0 N=100 K={k}", "fixed-point", 0.0, 16 + i, 0.8 + 0.2 * i, K=k)
                        for i, k in enumerate((256, 1024, 4096))],
    "fidelity_psweep": [_fid_row("VP-ε (ours)", "p=0 N=100 K=1024", "fixed-point", 0.0, 17.8, 0.99)] +
                       [_fid_row("VP-ε (ours)", f"p={p} N=100 K=1024", "trajectory", p, 20 + p, 0.99)
                        for p in (0.2, 0.5, 0.8)],
    "fidelity_grid2d": [_fid_row(b, f"p=0.5 grid {g}", "trajectory", 0.5, 20 + n, n, grid=g)
                        for b in ("VP-ε (ours)", "flow (ours)") for g, n in (("1x1", 1), ("4x4", 16), ("8x8", 64))],
    "fidelity_tokens10": [_fid_row("EDM in taef2 latent (ours)", "N=10 K=4096 p=0.5 grid 4x4", "trajectory", 0.5,
                                   16.0, 0.5, K=4096, N=10, grid="4x4")],
    "jpeg": [{"label": f"JPEG q={q} 4:2:0", "quality": q, "subsampling": "4:2:0", "psnr": 20 + q / 5,
              "ssim": 0.9, "bpp": 2 + q / 50, "scan_bpp": q / 50, "num_images": 4} for q in (5, 50, 95)]
    + [{"label": "JPEG q=75 4:2:0", "quality": 75, "subsampling": "4:2:0", "psnr": None, "identical_images": 2,
        "psnr_over_changed_images": 50.0, "ssim": 0.99, "bpp": 4.7, "scan_bpp": 2.2, "num_images": 4}],
    "generator": [
        {"label": "RDPM generator (ours)", "kind": "generator", "CIFAR-feature FD": 30.0, "class accuracy": 0.6},
        {"label": "backbone ODE, 10 steps", "kind": "ode", "steps": 10, "CIFAR-feature FD": 50.0, "class accuracy": 0.5},
        {"label": "backbone ODE, 100 steps", "kind": "ode", "steps": 100, "CIFAR-feature FD": 25.0,
         "class accuracy": 0.7},
        {"label": "random tokens", "kind": "random", "CIFAR-feature FD": 90.0, "class accuracy": None},
        {"label": "real images", "kind": "real", "CIFAR-feature FD": 2.0, "class accuracy": 0.88},
    ],
    "generator_fid_latent": [
        {"label": "RDPM generator (ours)", "kind": "generator", "fid": 120.0, "num_images": 1000},
        {"label": "random tokens", "kind": "random", "fid": 165.0, "num_images": 1000},
        {"label": "decoded tokens", "kind": "tokens", "fid": 81.0, "num_images": 1000},
        {"label": "autoencoder alone", "kind": "autoencoder", "fid": 45.0, "num_images": 1000},
        {"label": "backbone ancestral, 100 steps", "kind": "ancestral", "steps": 100, "fid": 70.0, "num_images": 1000},
        {"label": "backbone ODE, 10 steps", "kind": "ode", "steps": 10, "fid": 68.0, "num_images": 1000},
    ],
}

EXPECTED = {"rate_distortion": "rate_distortion.png", "k_scaling": "k_scaling.png", "grid_scaling": "grid_scaling.png",
            "p_sweep": "p_sweep.png", "generator_vs_steps": "generator_vs_steps.png", "fid_vs_steps": "fid_vs_steps.png"}


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    for name, rows in SYNTHETIC.items():
        (d / f"{name}.json").write_text(json.dumps({"rows": rows, "command": "synthetic"}))
    return d


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fn", sorted(EXPECTED))
def test_plot_writes_png(plots, results, tmp_path, fn):
    out = tmp_path / "plots"
    path = getattr(plots, fn)(results, out)
    assert path == out / EXPECTED[fn]
    assert _is_png(path)


@pytest.mark.parametrize("fn", sorted(EXPECTED))
def test_plot_skips_without_json(plots, tmp_path, fn):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert getattr(plots, fn)(empty, tmp_path / "plots") is None
    assert not (tmp_path / "plots" / EXPECTED[fn]).exists()


def test_make_all_default_plots_dir(plots, results):
    written = plots.make_all(results)
    assert sorted(p.name for p in written) == sorted(EXPECTED.values())
    assert all(p.parent == results / "plots" and _is_png(p) for p in written)


def test_make_all_partial(plots, results, tmp_path):
    (results / "generator.json").unlink()
    written = plots.make_all(results, tmp_path / "out")
    assert "generator_vs_steps.png" not in {p.name for p in written} and len(written) == len(EXPECTED) - 1


def test_make_all_without_matplotlib(plots, results, tmp_path, monkeypatch, capsys):
    def missing():
        raise ImportError("No module named 'matplotlib'")
    monkeypatch.setattr(plots, "_pyplot", missing)
    assert plots.make_all(results, tmp_path / "out") == []
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "skipped" in out[0] and "matplotlib" in out[0]
    assert not (tmp_path / "out").exists()
