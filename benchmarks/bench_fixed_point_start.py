"""Where the fixed point starts and how fast it climbs: x̂0's PSNR at every step of the p=0 plan.

Algorithm 2 starts at T_s from the one-token init (a scaled codebook vector), so the first x̂0 is
close to the dataset mean, and each step adds a bounded amount of information: the curve shows the
chain still climbing when the N steps run out. ``--descent-steps M`` spends M of the N steps on a
trajectory from t_start down to T_s first. This script records both curves (the encoder's x̂0 at
each step, against the target, PSNR in dB averaged over images) and the final reconstruction:

    python benchmarks/bench_fixed_point_start.py --out benchmarks/results/fixed_point_start.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm.chain import EncodeChooser, run_chain  # noqa: E402
from rdpm_gddcm.data import balanced_indices, build_dataset  # noqa: E402
from rdpm_gddcm.metrics import psnr  # noqa: E402
from rdpm_gddcm.tokenizer import Tokenizer, TokenizerConfig, load_models  # noqa: E402


def latent_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of 10·log10(4 / MSE) on the chain's float latents (x̂0 is not an image:
    not clamped or quantised; the final reconstruction uses the project's image PSNR)."""
    mse = ((a.float() - b.float()) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(4.0 / mse)).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backbone", default=str(ROOT / "assets" / "cifar10-pixels-vp"))
    p.add_argument("--data-path", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "val"))
    p.add_argument("--num-images", type=int, default=16)
    p.add_argument("--num-steps", type=int, default=300)
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--selection", default="l2")
    p.add_argument("--descent-steps", default="0,20", help="comma-separated M values (0 = Algorithm 2)")
    p.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16"])
    p.add_argument("--out", required=True)
    a = p.parse_args()
    bb, ae, size = load_models(a.backbone, None, None, "cpu", a.mixed_precision)
    ds = build_dataset(a.data_path, size)
    imgs = torch.stack([ds[j][0] for j in balanced_indices(len(ds), a.num_images)])
    x = ae.encode(imgs)
    runs = []
    for m in [int(v) for v in a.descent_steps.split(",")]:
        cfg = TokenizerConfig(plan="fixed-point", num_steps=a.num_steps, codebook_size=a.codebook_size,
                              selection=a.selection, descent_steps=m)
        tok = Tokenizer(bb, ae, cfg, size)
        t0 = time.time()
        with torch.no_grad():
            out = run_chain(bb, tok.spec, EncodeChooser(x, a.selection), len(imgs), record=True)
        curve = [latent_psnr(xh, x) for xh in out.xhs]
        final = float(psnr(ae.decode(out.latent), imgs).mean())
        # slope of the fixed-point phase after its first 50 steps (least squares, dB per step)
        n0 = m + 50
        slope = float(np.polyfit(np.arange(n0, len(curve)), curve[n0:], 1)[0])
        runs.append({"descent_steps": m, "psnr_xh_per_step": [round(v, 3) for v in curve],
                     "psnr_xh_first_fixed_point_step": round(curve[m], 3), "psnr_final": round(final, 3),
                     "fixed_point_slope_db_per_step": round(slope, 4), "seconds": round(time.time() - t0, 1)})
        print(f"descent {m:3d}: x̂0 at the first fixed-point step {curve[m]:.2f} dB, final {final:.2f} dB, "
              f"slope {slope:.4f} dB/step", flush=True)
    res = {"command": "python " + " ".join(["benchmarks/bench_fixed_point_start.py", *sys.argv[1:]]),
           "backbone": Path(a.backbone).name, "num_images": a.num_images, "num_steps": a.num_steps,
           "codebook_size": a.codebook_size, "selection": a.selection, "mixed_precision": a.mixed_precision,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
           "runs": runs}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
