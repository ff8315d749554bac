"""Tokenizer fidelity tables (the gDDCM paper's Table 1 analogue, 2D grids, K scaling).

Each row runs `rdpm-reconstruct` (rdpm_gddcm.reconstruct.run) on the first --num-images images
of a class-balanced stride over CIFAR-10 `val`, and the rows are collected into one JSON:

    python benchmarks/bench_fidelity.py --suite table1 --num-images 128 \
        --out benchmarks/results/fidelity_table1.json

Suites: ``table1`` (N=300, K=1024, pixel space: p=0, DDCM, p=0.5 per backbone + the
linear-Gaussian floor), ``grid2d`` (N=100, 1x1/4x4/8x8), ``ksweep`` (K in 256/1024/4096, N=100),
``psweep`` (VP-ε, 1D, N=100, K=1024: trajectory p in 0.2..0.8 and the fixed-point p=0),
``tokens10`` (the generator's setting: N=10, K=4096, trajectory p=0.5, 4x4/8x8 grids, pixel
backbones and the taef2-latent EDM: the numbers behind the choice of token space), ``tune`` (small searches on the first 16 val images that set the documented defaults: σ_max of
Eq. 10/13 with the linear-Gaussian floor, T_s for the trained backbones). Rows already in the
output JSON are kept (re-running resumes); with ``--rfid`` rows are measured with rFID too (the
standard FID Inception, ``rdpm-reconstruct --rfid``), and kept rows that lack it are run again.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm import reconstruct  # noqa: E402


def _rel(arg: str) -> str:
    """Paths recorded in results are relative to the repository root (no machine paths)."""
    import os
    return os.path.relpath(arg, ROOT) if os.path.isabs(arg) else arg


def fit_floor(data_path: str, out_dir: Path, num_images: int | None = None) -> Path:
    """Fit the linear-Gaussian (Wiener) backbone to CIFAR-10 train in pixel space (vp-discrete)."""
    from rdpm_gddcm.backbones import LinearGaussianBackbone
    from rdpm_gddcm.data import build_dataset
    from rdpm_gddcm.families import Family
    if (out_dir / "backbone.json").exists():
        return out_dir
    ds = build_dataset(data_path, 32)
    n = len(ds) if num_images is None else min(num_images, len(ds))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=1000)
    X = torch.cat([x for x, _ in loader])
    LinearGaussianBackbone.fit(X, Family("vp-discrete")).save(out_dir)
    return out_dir


LATENT_EDM_LABEL = "EDM in taef2 latent, long run (ours)"
CONSISTENCY_LABEL = "consistency in taef2 latent (ours)"


def rows_for(suite: str, a) -> list[dict]:
    vp, flow, floor = a.vp_backbone, a.flow_backbone, str(a.floor_dir)
    N, K = a.num_steps, a.codebook_size
    common = ["--num-steps", str(N), "--codebook-size", str(K)]
    if suite == "table1":
        rows = [
            ("linear-Gaussian (floor)", "DDCM", floor, ["--plan", "ddcm", "--selection", "dot"]),
            ("linear-Gaussian (floor)", "p=0", floor, ["--plan", "fixed-point"]),
            ("VP-ε (ours)", "DDCM", vp, ["--plan", "ddcm", "--selection", "dot"]),
            ("VP-ε (ours)", "p=0", vp, ["--plan", "fixed-point"]),
            ("VP-ε (ours)", "p=0.5", vp, ["--plan", "trajectory", "--p", "0.5"]),
            ("flow (ours)", "p=0", flow, ["--plan", "fixed-point"]),
            ("flow (ours)", "p=0.5", flow, ["--plan", "trajectory", "--p", "0.5"]),
            # the jacobian selection (encoder only; rdpm_gddcm.chain.EncodeChooser), also on the baseline
            ("VP-ε (ours)", "p=0 jacobian", vp, ["--plan", "fixed-point", "--selection", "jacobian"]),
            ("VP-ε (ours)", "DDCM jacobian", vp, ["--plan", "ddcm", "--selection", "jacobian"]),
            ("flow (ours)", "p=0 jacobian", flow, ["--plan", "fixed-point", "--selection", "jacobian"]),
            # the fixed point reached by a 20-step trajectory descent from t_start instead of the one-token
            # init at T_s (--descent-steps; same N=300 tokens, so equal bits)
            ("VP-ε (ours)", "p=0 + descent 20", vp, ["--plan", "fixed-point", "--descent-steps", "20"]),
            ("VP-ε (ours)", "p=0 + descent 20 jacobian", vp,
             ["--plan", "fixed-point", "--descent-steps", "20", "--selection", "jacobian"]),
            ("flow (ours)", "p=0 + descent 20", flow, ["--plan", "fixed-point", "--descent-steps", "20"]),
            ("flow (ours)", "p=0 + descent 20 jacobian", flow,
             ["--plan", "fixed-point", "--descent-steps", "20", "--selection", "jacobian"]),
        ]
        out = [dict(backbone_label=b, plan_label=p, backbone=d, args=common + x) for b, p, d, x in rows]
        # rows 14-17: the taef2 latent (32x8x8 = 2,048 values per token vector), the long EDM run and the
        # consistency model tuned from it (the paper's claim: p=0.5 fails for a consistency model, p=0 works).
        # No DDCM row: that baseline is DDPM-only (SPEC §3), as in the paper's table
        latent = ["--autoencoder", f"taef2:{a.taef2}"]
        for label, d in ((LATENT_EDM_LABEL, a.latent_long_backbone), (CONSISTENCY_LABEL, a.consistency_backbone)):
            out += [dict(backbone_label=label, plan_label="p=0", backbone=d, args=common + latent + ["--plan", "fixed-point"]),
                    dict(backbone_label=label, plan_label="p=0.5", backbone=d,
                         args=common + latent + ["--plan", "trajectory", "--p", "0.5"])]
        return out
    if suite == "grid2d":
        out = []
        for bb_label, d in (("VP-ε (ours)", vp), ("flow (ours)", flow)):
            for g in ("1x1", "4x4", "8x8"):
                out.append(dict(backbone_label=bb_label, plan_label=f"p=0.5 grid {g}", backbone=d,
                                args=["--num-steps", "100", "--codebook-size", str(K), "--plan", "trajectory",
                                      "--p", "0.5", "--grid", g]))
        return out
    if suite == "ksweep":
        return [dict(backbone_label=label, plan_label=f"p=0 N=100 K={k}", backbone=d,
                     args=["--num-steps", "100", "--codebook-size", str(k), "--plan", "fixed-point"])
                for label, d in (("VP-ε (ours)", vp), ("flow (ours)", flow)) for k in (256, 1024, 4096)]
    if suite == "psweep":
        # trajectory p (VP-ε, 1D, N=100, K=1024) with the fixed-point plan (p=0) as the reference point
        base = ["--num-steps", "100", "--codebook-size", "1024"]
        out = [dict(backbone_label="VP-ε (ours)", plan_label="p=0 N=100 K=1024", backbone=vp,
                    args=base + ["--plan", "fixed-point"])]
        return out + [dict(backbone_label="VP-ε (ours)", plan_label=f"p={q} N=100 K=1024", backbone=vp,
                           args=base + ["--plan", "trajectory", "--p", str(q)]) for q in (0.2, 0.35, 0.5, 0.65, 0.8)]
    if suite == "tokens10":
        t10 = ["--num-steps", "10", "--codebook-size", "4096", "--plan", "trajectory", "--p", "0.5"]
        out = [dict(backbone_label=label, plan_label=f"N=10 K=4096 p=0.5 grid {g}", backbone=d, args=t10 + ["--grid", g])
               for label, d in (("VP-ε (ours)", vp), ("flow (ours)", flow)) for g in ("4x4", "8x8")]
        out.append(dict(backbone_label="VP-ε (ours)", plan_label="N=10 K=4096 p=0.5 grid 8x8 class-conditional",
                        backbone=vp, args=t10 + ["--grid", "8x8", "--conditional"]))
        out.append(dict(backbone_label="linear-Gaussian (floor)", plan_label="N=10 K=4096 p=0.5 grid 8x8",
                        backbone=floor, args=t10 + ["--grid", "8x8"]))
        # the selection rule at this setting (SPEC §4): dot spends every bit on the residual x - x̂0
        out.append(dict(backbone_label="VP-ε (ours)", plan_label="N=10 K=4096 p=0.5 grid 8x8 class-conditional dot",
                        backbone=vp, args=t10 + ["--grid", "8x8", "--conditional", "--selection", "dot"]))
        out.append(dict(backbone_label="linear-Gaussian (floor)", plan_label="N=10 K=4096 p=0.5 grid 8x8 dot",
                        backbone=floor, args=t10 + ["--grid", "8x8", "--selection", "dot"]))
        # the latent backbone sees 64 px images through taef2 (latent 32x8x8): grid 8x8 = one token per latent pixel
        out += [dict(backbone_label="EDM in taef2 latent (ours)", plan_label=f"N=10 K=4096 p=0.5 grid {g}",
                     backbone=a.latent_backbone, args=t10 + ["--grid", g, "--autoencoder", f"taef2:{a.taef2}"])
                for g in ("4x4", "8x8")]
        # rows 10-15: the long latent EDM run and its consistency model at the generator's setting, with the
        # generator's conditioning and both selection rules (the new generator's token choice)
        for label, d in ((LATENT_EDM_LABEL, a.latent_long_backbone), (CONSISTENCY_LABEL, a.consistency_backbone)):
            for g, sel in (("8x8", "l2"), ("8x8", "dot"), ("4x4", "dot")):
                out.append(dict(backbone_label=label, plan_label=f"N=10 K=4096 p=0.5 grid {g} class-conditional"
                                                                 + ("" if sel == "l2" else f" {sel}"),
                                backbone=d, args=t10 + ["--grid", g, "--conditional", "--selection", sel,
                                                        "--autoencoder", f"taef2:{a.taef2}"]))
        # rows 16-19: the plan at that setting (the backtrack p, and the fixed point p=0)
        base = ["--num-steps", "10", "--codebook-size", "4096", "--grid", "8x8", "--conditional", "--selection", "dot",
                "--autoencoder", f"taef2:{a.taef2}"]
        for label, plan in (("p=0.3", ["--plan", "trajectory", "--p", "0.3"]), ("p=0.7", ["--plan", "trajectory", "--p", "0.7"]),
                            ("p=0", ["--plan", "fixed-point"]), ("p=0.85", ["--plan", "trajectory", "--p", "0.85"])):
            out.append(dict(backbone_label=LATENT_EDM_LABEL, plan_label=f"N=10 K=4096 {label} grid 8x8 class-conditional dot",
                            backbone=a.latent_long_backbone, args=base + plan))
        return out
    if suite == "tune":
        # run on the first val images (--num-images 16): picks the documented defaults
        out = [dict(backbone_label="linear-Gaussian (floor)", plan_label=f"p=0 sigma_max_r={r}", backbone=floor,
                    args=common + ["--plan", "fixed-point", "--sigma-max-r", str(r)]) for r in (1, 5, 10, 20, 80)]
        for ts, dmin, dmax in (("20", "1", "18"), ("50", "2", "45")):
            out.append(dict(backbone_label="VP-ε (ours)", plan_label=f"p=0 T_s={ts} Δ {dmax}->{dmin}", backbone=vp,
                            args=common + ["--plan", "fixed-point", "--t-fixed", ts, "--delta-min", dmin,
                                           "--delta-max", dmax]))
        for ts, dmin, dmax in (("0.08", "0.004", "0.07"), ("0.15", "0.008", "0.14"), ("0.3", "0.015", "0.27")):
            out.append(dict(backbone_label="flow (ours)", plan_label=f"p=0 T_s={ts} Δ {dmax}->{dmin}", backbone=flow,
                            args=common + ["--plan", "fixed-point", "--t-fixed", ts, "--delta-min", dmin,
                                           "--delta-max", dmax]))
        for ts, dmin, dmax in (("10", "1", "9"),):                              # row 10: below the default T_s
            out.append(dict(backbone_label="VP-ε (ours)", plan_label=f"p=0 T_s={ts} Δ {dmax}->{dmin}", backbone=vp,
                            args=common + ["--plan", "fixed-point", "--t-fixed", ts, "--delta-min", dmin,
                                           "--delta-max", dmax]))
        for m in (10, 20, 40):                                                  # rows 11-13: --descent-steps
            out.append(dict(backbone_label="VP-ε (ours)", plan_label=f"p=0 + descent {m}", backbone=vp,
                            args=common + ["--plan", "fixed-point", "--descent-steps", str(m)]))
        out.append(dict(backbone_label="VP-ε (ours)", plan_label="p=0 + descent 20 T_s=10 Δ 9->1", backbone=vp,
                        args=common + ["--plan", "fixed-point", "--descent-steps", "20", "--t-fixed", "10",
                                       "--delta-min", "1", "--delta-max", "9"]))      # row 14
        return out
    raise SystemExit(f"unknown suite {suite}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--suite", default="table1", choices=["table1", "grid2d", "ksweep", "psweep", "tokens10", "tune"])
    p.add_argument("--data-path", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "val"))
    p.add_argument("--train-path", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "train"))
    p.add_argument("--vp-backbone", default=str(ROOT / "assets" / "cifar10-pixels-vp"))
    p.add_argument("--flow-backbone", default=str(ROOT / "assets" / "cifar10-pixels-flow"))
    p.add_argument("--latent-backbone", default=str(ROOT / "assets" / "cifar10-taef2-edm"))
    p.add_argument("--latent-long-backbone", default=str(ROOT / "assets" / "cifar10-taef2-edm-long"))
    p.add_argument("--consistency-backbone", default=str(ROOT / "assets" / "cifar10-taef2-consistency"))
    p.add_argument("--taef2", default=str(ROOT.parent / "shared" / "weights" / "taef2"))
    p.add_argument("--floor-dir", default=str(ROOT / "runs" / "linear-gaussian-cifar10"))
    p.add_argument("--num-images", type=int, default=128)
    p.add_argument("--num-steps", type=int, default=300)
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "bf16"],
                   help="the backbone's precision (auto: what rdpm-reconstruct picks on this CPU)")
    p.add_argument("--rfid", action="store_true",
                   help="also rFID of each row's reconstructions against their originals (re-runs kept rows without it)")
    p.add_argument("--rows", default=None, help="comma-separated row numbers to run (default: all)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    a.floor_dir = Path(a.floor_dir)
    fit_floor(a.train_path, a.floor_dir)
    out = Path(a.out)
    res = json.loads(out.read_text()) if out.exists() else {"rows": []}
    done = {(r["backbone_label"], r["plan_label"]) for r in res["rows"] if not a.rfid or "rfid" in r}
    rows = rows_for(a.suite, a)
    if a.rows:
        rows = [rows[int(i)] for i in a.rows.split(",")]
    for row in rows:
        if (row["backbone_label"], row["plan_label"]) in done:
            continue
        tag = f"{row['backbone_label']}-{row['plan_label']}".replace(" ", "_").replace("/", "_")
        mp = "no" if "floor" in row["backbone_label"] else a.mixed_precision
        args = ["--data-path", a.data_path, "--backbone", row["backbone"], "--num-images", str(a.num_images),
                "--batch-size", str(a.batch_size), "--out", str(ROOT / "runs" / "fidelity" / a.suite / tag),
                "--mixed-precision", mp, *row["args"]] + (["--rfid"] if a.rfid else [])
        t0 = time.time()
        m = reconstruct.run(reconstruct.parse_args(args))
        key = (row["backbone_label"], row["plan_label"])
        new = {"backbone_label": key[0], "plan_label": key[1], "psnr": m["psnr"], "ssim": m["ssim"],
               "bits_per_image": m["bits_per_image"], "bpp": m["bpp"],
               "seconds_per_image": m["seconds_per_image"], "wall_s": time.time() - t0,
               "num_images": m["num_images"], "plan": m["plan_resolved"],
               **({"rfid": m["rfid"]} if "rfid" in m else {}), "command_args": [_rel(x) for x in args]}
        same = [i for i, r in enumerate(res["rows"]) if (r["backbone_label"], r["plan_label"]) == key]
        if same:                                   # re-run for rFID: the row keeps its place in the table
            res["rows"][same[0]] = new
        else:
            res["rows"].append(new)
        cmd = " ".join(sys.argv)
        res.setdefault("commands", [])
        if cmd not in res["commands"]:
            res["commands"].append(cmd)
        res.update({"suite": a.suite, "command": cmd, "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()})
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=2))
        tmp.replace(out)
        print(f"{row['backbone_label']:28s} {row['plan_label']:22s} PSNR {m['psnr']:.2f}  SSIM {m['ssim']:.4f}"
              + (f"  rFID-{m['num_images']} {m['rfid']:.2f}" if "rfid" in m else ""))


if __name__ == "__main__":
    main()
