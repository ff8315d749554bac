"""The device check script runs end to end on the CPU with --dry-run (tiny shapes), writing one JSON
with every section; without a CUDA device and without --dry-run it refuses with one clear line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_writes_every_section(tmp_path):
    out = tmp_path / "dc.json"
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--dry-run",
                        "--sections", "env,codebook_identity,token_identity,cifar_throughput,imagenet_throughput,"
                                      "train_throughput"],
                       env={**__import__("os").environ, "OUT": str(tmp_path), "PY": sys.executable},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "device_check.json").read_text())
    assert res["dry_run"] is True
    secs = res["sections"]
    errors = {k: v["error"] for k, v in secs.items() if "error" in v}
    assert not errors, errors
    assert secs["codebook_identity"]["all_identical"] is True
    tid = secs["token_identity"]
    assert tid["fraction_equal_tokens"] == 1.0 and tid["psnr_cpu_decode_vs_device_decode_db"] > 60   # cpu vs cpu
    assert secs["cifar_throughput"]["sample_img_per_s"] > 0
    assert secs["imagenet_throughput"]["dit_s_per_image_per_step"] > 0
    assert secs["train_throughput"]["generator_train_seq_per_s"] > 0
    assert out.exists() is False                                  # it wrote where $OUT says


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_refuses_clearly(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--out", str(tmp_path / "x.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and r.stderr.strip().startswith("error: no CUDA device")
    assert not (tmp_path / "x.json").exists()
