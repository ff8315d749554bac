"""Package a trained backbone run as a shipped asset with its card.

    python benchmarks/backbone_card.py --run runs/cifar10-pixels-vp --name cifar10-pixels-vp \
        --command "<the exact training command>" --commit <git commit it was trained at>

Copies backbone.safetensors (EMA, fp16) + backbone.json + the last sample grid into
assets/NAME/, measures the denoising error on CIFAR-10 `val` — mean ‖x̂0 - x‖² per value at a few
noise levels σ (x_t = s·(x + σ·ε)), for the backbone and for the linear-Gaussian (Wiener) floor
fitted to the same training data — and writes card.json + CARD.md.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm.backbones import LinearGaussianBackbone, load_backbone  # noqa: E402

SIGMAS = (0.05, 0.2, 0.5, 1.0)


def log_stats(run: Path) -> dict:
    lines = (run / "log.txt").read_text().splitlines()
    stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S") for l in lines
              if (m := re.match(r"\[(.{19})\]", l))]
    losses = [float(m.group(1)) for l in lines if (m := re.search(r" loss ([0-9.]+)", l))]
    steps = [int(m.group(1)) for l in lines if (m := re.search(r"step (\d+) loss", l))]
    return {"wall_min": (stamps[-1] - stamps[0]).total_seconds() / 60, "final_loss": losses[-1], "steps": steps[-1],
            "loss_curve": list(zip(steps, losses))}


@torch.no_grad()
def denoising_mse(bb, x: torch.Tensor, seed: int = 0) -> dict:
    fam = bb.family
    g = torch.Generator().manual_seed(seed)
    out = {}
    for sig in SIGMAS:
        t = fam.time_for_sigma(sig)
        s, S = float(fam.s(t)), float(fam.S(t))
        errs = []
        for i in range(0, len(x), 250):
            xb = x[i:i + 250]
            x_t = s * xb + S * torch.randn(xb.shape, generator=g)
            xh, _ = bb.predict(x_t, t)
            errs.append(((xh - xb) ** 2).flatten(1).mean(1))
        out[f"sigma={sig}"] = float(torch.cat(errs).mean())
    return out


def write_card_md(card: dict, dst: Path, grid_steps: int):
    """CARD.md from card.json (so the prose can never disagree with the measured numbers)."""
    ours, floor = card["denoising_mse"], card["denoising_mse_linear_gaussian_floor"]
    better = [k.split("=")[1] for k in ours if ours[k] < floor[k]]
    worse = [k.split("=")[1] for k in ours if ours[k] >= floor[k]]
    verdict = (f"Against the linear-Gaussian (Wiener) floor its x̂0 error is lower at σ = {', '.join(better) or 'none'}"
               + (f" and not lower at σ = {', '.join(worse)}." if worse else " (every level measured)."))
    rows = "\n".join(f"| {k.split('=')[1]} | {v:.5f} | {card['denoising_mse_linear_gaussian_floor'][k]:.5f} |"
                     for k, v in card["denoising_mse"].items())
    note = f"\n{card['note']}\n" if card.get("note") else ""
    (dst / "CARD.md").write_text(f"""# {card['name']}

A class-conditional CIFAR-10 diffusion backbone trained by this project on this project's CPU budget.
{verdict}
Family `{card['family']}` ({card['prediction']} prediction), network `{card['model']}`
({card['parameters_m']}M parameters), {card['denoising_space']}, {card['image_size']}px images, latent {card['latent_shape']}.
Weights: EMA, fp16 safetensors ({card['file_mb']:.1f} MB). 10 classes + a null class (CFG).

## Training
- Command (run at commit `{card['commit']}`):
  `{card['command']}`
- Data: CIFAR-10 `train` ({card['training_images']} images).
- {card['steps']} optimizer steps, wall time {card["wall_min"]:.0f} min on 1 CPU thread shared with other jobs (training loop only;
  encoding the training set once through the autoencoder, cached in the run dir, is not included).
- Final training loss (mean of the last logging window): {card['final_loss']:.5f}.
{note}
This is a small, briefly trained model, not a good generator. `samples.png`: the shipped weights'
own deterministic ODE sampler ({grid_steps} steps, one class per row, seed 0).

## Denoising error on `val` ({card['num_val_images']} images)
Mean squared error of x̂0 per value ({card['denoising_space']}) at noise level σ (x_t = s·(x + σε)),
against the linear-Gaussian (Wiener) denoiser fitted to the same training data:

| σ | this backbone | linear-Gaussian floor |
| --- | --- | --- |
{rows}

Reproduce: `python benchmarks/backbone_card.py --run RUN_DIR --name {card['name']} --command "..." --commit {card['commit']}`.
""")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the exact training command")
    p.add_argument("--commit", required=True, help="git commit the run was trained at")
    p.add_argument("--val-path", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "val"))
    p.add_argument("--num-val", type=int, default=1000)
    p.add_argument("--grid-steps", type=int, default=50, help="ODE steps of samples.png")
    p.add_argument("--grid-only", action="store_true", help="only re-render samples.png")
    p.add_argument("--note", default=None, help="a paragraph for the card (e.g. what a fine-tune started from and why)")
    a = p.parse_args()
    run, dst = Path(a.run), ROOT / "assets" / a.name
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "backbone.safetensors", dst / "backbone.safetensors")
    meta = json.loads((run / "backbone.json").read_text())
    (dst / "backbone.json").write_text(json.dumps(meta, indent=2))
    from rdpm_gddcm.autoencoders import load_autoencoder
    from rdpm_gddcm.data import build_dataset
    from rdpm_gddcm.train_backbone import sample_grid
    bb = load_backbone(str(dst))
    ae = load_autoencoder(meta["autoencoder_spec"])
    # the grid comes from the shipped fp16 EMA weights as loaded (x̂0 clipping for pixel models)
    sample_grid(bb, ae, bb.num_classes, a.grid_steps, seed=0, path=dst / "samples.png")
    if a.grid_only:
        write_card_md(json.loads((dst / "card.json").read_text()), dst, a.grid_steps)
        return
    size = meta["data"]["image_size"]
    val = build_dataset(a.val_path, size)
    idx = [int(i * len(val) / a.num_val) for i in range(a.num_val)]
    x = ae.encode(torch.stack([val[i][0] for i in idx]))
    cache = sorted(run.glob("latents-*.pt"))[0]
    train_lat = torch.load(cache, weights_only=True)["latents"].float()
    floor = LinearGaussianBackbone.fit(train_lat, bb.family)
    stats = log_stats(run)
    card = {"name": a.name, "family": bb.family.name, "prediction": meta["prediction"],
            "autoencoder": meta["autoencoder"]["name"], "autoencoder_spec_used": meta["autoencoder_spec"],
            "image_size": size, "latent_shape": list(bb.latent_shape), "parameters_m": round(sum(v.numel() for v in bb.net.parameters()) / 1e6, 2),
            "model": meta.get("model"), "steps": stats["steps"], "wall_min": stats["wall_min"], "final_loss": stats["final_loss"],
            "training_images": len(train_lat), "command": a.command, "commit": a.commit, "note": a.note,
            "denoising_mse": denoising_mse(bb, x), "denoising_mse_linear_gaussian_floor": denoising_mse(floor, x),
            "denoising_space": "pixels in [-1, 1]" if meta["autoencoder"]["name"] == "pixels" else "taef2 latent",
            "num_val_images": a.num_val, "file_mb": (dst / "backbone.safetensors").stat().st_size / 2 ** 20,
            "loss_curve": stats["loss_curve"]}
    (dst / "card.json").write_text(json.dumps(card, indent=2))
    write_card_md(card, dst, a.grid_steps)
    print(json.dumps({k: card[k] for k in ("name", "steps", "wall_min", "final_loss", "denoising_mse",
                                            "denoising_mse_linear_gaussian_floor")}, indent=1))


if __name__ == "__main__":
    main()
