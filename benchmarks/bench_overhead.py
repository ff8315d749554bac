"""Tokenizer overhead: encode time / time of the same N backbone calls alone (target <= 1.05),
and peak memory of a K=65536 1D encode (bounded by chunked scoring, SPEC §6).

    python benchmarks/bench_overhead.py --out benchmarks/results/overhead.json

The backbone is the pixel `unet-cpu` network at CIFAR-10 size with random weights (cost does not
depend on the weights), batch 64, K=1024. Timings alternate encode and backbone-only runs and
take the median of --repeats, so background load affects both sides alike. Codebooks are warm
(cached) after the first run, as in a tokenizing job that encodes many batches.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm.backbones import NetworkBackbone  # noqa: E402
from rdpm_gddcm.chain import ChainSpec, EncodeChooser, run_chain  # noqa: E402
from rdpm_gddcm.codebooks import Grid, VirtualCodebook  # noqa: E402
from rdpm_gddcm.families import Family  # noqa: E402
from rdpm_gddcm.networks import build_unet  # noqa: E402
from rdpm_gddcm.plans import PlanConfig, build_plan  # noqa: E402


def make_backbone(bf16: bool):
    torch.manual_seed(0)
    bb = NetworkBackbone(build_unet("unet-cpu").eval(), Family("flow"))
    bb.autocast_dtype = torch.bfloat16 if bf16 else None
    return bb


def measure(grid: str, N: int, K: int, batch: int, repeats: int, bf16: bool) -> dict:
    bb = make_backbone(bf16)
    fam = bb.family
    plan = build_plan(PlanConfig(kind="trajectory", p=0.5, num_steps=N), fam)
    spec = ChainSpec(plan, VirtualCodebook(0, 3 * 32 * 32), Grid.parse((3, 32, 32), grid), K, init="codebook")
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    times = [t for (t, _, _) in plan.steps] + plan.final_times[:-1]

    def encode():
        run_chain(bb, spec, EncodeChooser(x, "l2"), batch)

    def backbone_only():
        state = torch.randn_like(x)
        for t in times:
            bb.predict(state, t)

    encode()                                    # warm the codebook cache
    enc, base = [], []
    for _ in range(repeats):
        t0 = time.perf_counter(); encode(); enc.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); backbone_only(); base.append(time.perf_counter() - t0)
    e, b = statistics.median(enc), statistics.median(base)
    return {"grid": grid, "num_steps": N, "codebook_size": K, "batch": batch, "backbone_calls": len(times),
            "encode_s": e, "backbone_only_s": b, "ratio": e / b, "encode_runs_s": enc, "backbone_runs_s": base}


def peak_memory_child(K: int, batch: int, max_codebook_mb: int) -> dict:
    """Run one K-entry 1D encode step in this process and report its peak RSS (MiB)."""
    bb = make_backbone(False)
    plan = build_plan(PlanConfig(kind="trajectory", p=0.5, num_steps=2), bb.family)
    spec = ChainSpec(plan, VirtualCodebook(0, 3 * 32 * 32, cache_bytes=max_codebook_mb << 20), Grid((3, 32, 32)), K,
                     max_codebook_bytes=max_codebook_mb << 20)
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    run_chain(bb, spec, EncodeChooser(x, "l2"), batch)
    return {"K": K, "batch": batch, "max_codebook_mb": max_codebook_mb, "rss_before_mib": base,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "full_codebook_would_be_mib": K * 3 * 32 * 32 * 4 / 2 ** 20, "seconds": time.perf_counter() - t0}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--num-steps", type=int, default=20)
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="backbone under bf16 autocast (selection stays fp32)")
    p.add_argument("--memory-k", type=int, default=65536)
    p.add_argument("--out", required=True)
    p.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child_memory:
        print(json.dumps(peak_memory_child(a.memory_k, 8, 256)))
        return
    t0 = time.time()
    rows = [measure(g, a.num_steps, a.codebook_size, a.batch, a.repeats, a.bf16) for g in ("1x1", "4x4")]
    for r in rows:
        print(f"grid {r['grid']}: encode {r['encode_s']:.2f} s, backbone alone {r['backbone_only_s']:.2f} s, ratio {r['ratio']:.3f}")
    mem = json.loads(subprocess.run([sys.executable, __file__, "--child-memory", "--memory-k", str(a.memory_k), "--out", "-"],
                                    capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    print(f"K={mem['K']} 1D: peak RSS {mem['peak_rss_mib']:.0f} MiB (a materialised codebook alone would be "
          f"{mem['full_codebook_would_be_mib']:.0f} MiB)")
    res = {"command": " ".join(sys.argv), "rows": rows, "memory": mem, "wall_s": time.time() - t0,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "bf16": a.bf16,
           "machine": platform.machine(), "load_avg_at_end": list(__import__("os").getloadavg())}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
