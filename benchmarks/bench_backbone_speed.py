"""Backbone training throughput (fp32 vs bf16 autocast) and sampling cost per image per step.

    python benchmarks/bench_backbone_speed.py --out benchmarks/results/backbone_speed.json

For each shipped network size (pixel `unet-cpu` at 32x32, `unet-latent-cpu` on the 32x8x8 taef2
latent) it times full optimizer steps (forward + backward + AdamW, the loss of the flow family)
at batch 64, and no-grad backbone calls at batch 64, after warm-up, median of --repeats. The
load average is recorded: numbers taken while other jobs ran are not clean peak figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm.backbones import NetworkBackbone  # noqa: E402
from rdpm_gddcm.families import Family  # noqa: E402
from rdpm_gddcm.networks import build_unet  # noqa: E402
from rdpm_gddcm.train_backbone import diffusion_loss  # noqa: E402

MODELS = {"unet-cpu": dict(in_channels=3, image_size=32), "unet-latent-cpu": dict(in_channels=32, image_size=8)}


def bench(model: str, precision: str, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    net = build_unet(model, **MODELS[model], num_classes=10)
    bb = NetworkBackbone(net, Family("flow"))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    shape = (batch, MODELS[model]["in_channels"], MODELS[model]["image_size"], MODELS[model]["image_size"])
    x, y = torch.randn(shape), torch.randint(0, 11, (batch,))
    amp = precision == "bf16"

    def train_step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = diffusion_loss(bb, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    bb.autocast_dtype = torch.bfloat16 if amp else None

    def sample_call():
        bb.predict(x, 0.5, y)

    out = {"model": model, "precision": precision, "batch": batch,
           "parameters": sum(p.numel() for p in net.parameters())}
    for name, fn in (("train_step", train_step), ("sample_call", sample_call)):
        fn()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        med = statistics.median(ts)
        out[f"{name}_s"] = med
        if name == "train_step":
            out["train_images_per_s"] = batch / med
        else:
            out["sample_ms_per_image_per_step"] = 1000 * med / batch
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    rows = []
    for model in MODELS:
        for prec in ("fp32", "bf16"):
            r = bench(model, prec, a.batch, a.repeats)
            rows.append(r)
            print(f"{model:16s} {prec}: train {r['train_images_per_s']:.1f} img/s, "
                  f"sampling {r['sample_ms_per_image_per_step']:.2f} ms/image/step")
    res = {"command": " ".join(sys.argv), "rows": rows, "threads": a.threads, "torch": torch.__version__,
           "machine": platform.machine(), "cpu_count": os.cpu_count(), "load_avg_before_end": list(os.getloadavg()),
           "wall_s": time.time() - t0}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
