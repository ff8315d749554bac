"""Codebook generator v2 against v1: generation speed, and reconstruction PSNR with each.

    python benchmarks/bench_codebook.py --out benchmarks/results/codebook_versions.json

- speed: one cold K=4096 codebook of a 3x32x32 latent (the tokens10 setting), fastest of
  --repeats, on the CPU threads given (what a step costs when its codebook is not cached);
- fidelity: ``rdpm-reconstruct`` with the shipped VP-ε backbone on the first --num-images images of
  a class-balanced stride over CIFAR-10 `val`, v1 vs v2, in two settings: the generator's tokens
  (N=10, 8x8 grid, K=4096, trajectory p=0.5, class-conditional ``dot``) and a 1D one (N=100,
  K=1024, fixed point p=0). A different codebook is a different random draw, so the PSNR
  difference is sampling noise unless it is large next to the per-image spread (reported).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm import reconstruct  # noqa: E402
from rdpm_gddcm.codebooks import GENERATOR_VERSIONS, VirtualCodebook  # noqa: E402

SETTINGS = {
    "tokens10 (N=10, 8x8, K=4096, p=0.5, dot, conditional)":
        ["--plan", "trajectory", "--p", "0.5", "--num-steps", "10", "--grid", "8x8", "--codebook-size", "4096",
         "--selection", "dot", "--conditional"],
    "1D fixed point (N=100, K=1024, p=0, l2)":
        ["--plan", "fixed-point", "--num-steps", "100", "--codebook-size", "1024"],
}


def speed(version: str, repeats: int) -> float:
    ts = []
    for i in range(repeats + 1):
        cb = VirtualCodebook(0, 3 * 32 * 32, cache_bytes=0, version=version)
        t0 = time.perf_counter()
        cb.entries(i, 4096)
        ts.append(time.perf_counter() - t0)
    return min(ts[1:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/codebook_versions.json")
    p.add_argument("--data-path", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "val"))
    p.add_argument("--backbone", default=str(ROOT / "assets" / "cifar10-pixels-vp"))
    p.add_argument("--num-images", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    res = {"command": "python benchmarks/bench_codebook.py " + " ".join(sys.argv[1:]), "threads": torch.get_num_threads(),
           "speed_s_per_codebook": {v: speed(v, a.repeats) for v in GENERATOR_VERSIONS},
           "speed_what": "one cold 4096 x 3072 codebook (K=4096, 3x32x32 latent), fastest of the repeats",
           "rows": []}
    for label, flags in SETTINGS.items():
        for v in GENERATOR_VERSIONS:
            with tempfile.TemporaryDirectory() as out:
                m = reconstruct.run(reconstruct.parse_args([
                    "--data-path", a.data_path, "--backbone", a.backbone, "--num-images", str(a.num_images),
                    "--out", out, "--codebook-version", v, "--mixed-precision", "no", *flags]))
            res["rows"].append({"setting": label, "codebook": v, "psnr": m["psnr"], "ssim": m["ssim"],
                                "psnr_std_over_images": m.get("psnr_std"), "num_images": m["num_images"]})
            print(f"{label} {v}: {m['psnr']:.2f} dB", flush=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
