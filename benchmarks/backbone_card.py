"""Package a trained backbone run as a shipped asset with its card.

    python benchmarks/backbone_card.py --run runs/cifar10-pixels-vp --name cifar10-pixels-vp \
        --command "<the exact training command>" --commit <git commit it was trained at>

Copies backbone.safetensors (EMA, fp16) + backbone.json of the run's export (or ``--export``) into
assets/NAME/, renders samples.png with the backbone's own sampler, measures the denoising error on
CIFAR-10 `val` — mean ‖x̂0 - x‖² per value at a few noise levels σ (x_t = s·(x + σ·ε)), for the
backbone and for the linear-Gaussian (Wiener) floor fitted to the same training data — and, with
``--fid-steps``, the FID-1k of its own sampler at those step counts (standard FID Inception against
the 5,000 `val` features, as the pilots and the scaling curve), then writes card.json + CARD.md.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
from datetime import datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_backbone_pilots import own_sampler_name  # noqa: E402
from rdpm_gddcm.backbones import LinearGaussianBackbone, load_backbone  # noqa: E402

SIGMAS = (0.05, 0.2, 0.5, 1.0)


def log_stats(run: Path) -> dict:
    lines = (run / "log.txt").read_text().splitlines()
    stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S") for l in lines
              if (m := re.match(r"\[(.{19})\]", l))]
    losses = [float(m.group(1)) for l in lines if (m := re.search(r" loss ([0-9.]+)", l))]
    steps = [int(m.group(1)) for l in lines if (m := re.search(r"step (\d+) loss", l))]
    # a run resumed over several sessions has gaps between its legs: count only the time it was running
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    return {"wall_min": sum(g for g in gaps if g < 900) / 60, "final_loss": losses[-1], "steps": steps[-1],
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


def images_seen(meta: dict, run: Path) -> dict:
    """Training images seen by the exported weights: this run's, plus those of the weights it started from
    (``--init-from``, recorded in the run's config.json as ``init_images_seen``)."""
    mine = meta.get("images_seen") or (meta.get("train_config") or {}).get("global_batch_size", 0) * meta.get("steps", 0)
    cfg = run / "config.json"
    before = (json.loads(cfg.read_text()).get("resolved") or {}).get("init_images_seen", 0) if cfg.exists() else 0
    return {"images_seen": (mine + before) or None, "images_seen_before_run": before or None}


def fid_rows(bb, ae, a) -> list[dict]:
    """FID-N of the backbone's own sampler at each of ``a.fid_steps`` (CFG ``a.cfg_scale``)."""
    import time
    from bench_backbone_pilots import sample_own, score
    rows = []
    for steps in a.fid_steps:
        t0 = time.time()
        imgs, labels = sample_own(bb, ae, a.fid_num_images, steps, a.cfg_scale, seed=0)
        rows.append({"steps": steps, "sampler": own_sampler_name(bb.family, steps), "cfg_scale": a.cfg_scale,
                     "num_samples": len(imgs), "sample_s_per_image": (time.time() - t0) / len(imgs),
                     **score(imgs, labels, a)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def fid_section(card: dict) -> str:
    rows = card.get("fid") or []
    if not rows:
        return ("This is a small, briefly trained model, not a good generator; its samples are not scored by FID "
                "on this card.\n")
    body = "\n".join(f"| {r['sampler']} | {r['cfg_scale']} | {r['fid']:.1f} | {100 * r['class_accuracy']:.1f} % |"
                     for r in rows)
    n, ref = rows[0]["num_samples"], rows[0]["fid_reference"]
    return f"""## Samples: FID of its own sampler
{n:,} class-balanced samples per row (one generator per image seed), standard FID Inception against {ref}
(FID-{n // 1000}k: it ranks samplers at this count, it is not a CIFAR-10 FID-50k; real `train` images score
33.6 at this count and reference). Class accuracy: the project's proxy classifier.

| own sampler | CFG w | FID-{n // 1000}k ↓ | class accuracy ↑ |
| --- | --- | --- | --- |
{body}
"""


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

A class-conditional CIFAR-10 {'consistency model' if card['family'] == 'consistency' else 'diffusion backbone'} trained by this project on this project's CPU budget.
{verdict}
Family `{card['family']}` ({card['prediction']} prediction), network `{card['model']}`
({card['parameters_m']}M parameters), {card['denoising_space']}, {card['image_size']}px images, latent {card['latent_shape']}.
Weights: EMA, fp16 safetensors ({card['file_mb']:.1f} MB). 10 classes + a null class (CFG).

## Training
- Command (run at commit `{card['commit']}`):
  `{card['command']}`
- Data: CIFAR-10 `train` ({card['training_images']} images{f", {card['images_seen']:,} seen in training" if card.get('images_seen') else ''}{f", {card['images_seen_before_run']:,} of them by the weights it started from" if card.get('images_seen_before_run') else ''}).
- {card['steps']} optimizer steps, wall time {card["wall_min"]:.0f} min on {card.get("threads", 1)} CPU thread{"s" if card.get("threads", 1) > 1 else ""} shared with other jobs (training loop only;
  encoding the training set once through the autoencoder, cached in the run dir, is not included).
- Final training loss (mean of the last logging window): {card['final_loss']:.5f}.
{note}
{fid_section(card)}
`samples.png`: the shipped weights' own sampler ({card.get('grid_sampler') or own_sampler_name_for(card, grid_steps)},
one class per row, seed 0).

## Denoising error on `val` ({card['num_val_images']} images)
Mean squared error of x̂0 per value ({card['denoising_space']}) at noise level σ (x_t = s·(x + σε)),
against the linear-Gaussian (Wiener) denoiser fitted to the same training data:

| σ | this backbone | linear-Gaussian floor |
| --- | --- | --- |
{rows}

Reproduce: `{card.get('card_command') or f"python benchmarks/backbone_card.py --run RUN_DIR --name {card['name']} --command '...' --commit {card['commit']}"}`.
""")


def own_sampler_name_for(card: dict, steps: int) -> str:
    from rdpm_gddcm.families import Family
    return own_sampler_name(Family(card["family"]), steps)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the exact training command")
    p.add_argument("--commit", required=True, help="git commit the run was trained at")
    p.add_argument("--val-path", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "val"))
    p.add_argument("--num-val", type=int, default=1000)
    p.add_argument("--export", default=None, help="the exported backbone to ship (default: --run itself)")
    p.add_argument("--grid-steps", type=int, default=None,
                   help="own-sampler steps of samples.png (default: 2 for consistency models, else 50)")
    p.add_argument("--fid-steps", type=int, nargs="*", default=[], help="own-sampler step counts to score by FID")
    p.add_argument("--fid-num-images", type=int, default=1000)
    p.add_argument("--cfg-scale", type=float, default=2.0)
    p.add_argument("--fid-reference", default=str(ROOT / "runs" / "fid-features" / "val-000000-005000.npy"),
                   help="Inception features of the reference images (benchmarks/bench_fid_reference.py)")
    p.add_argument("--classifier", default=str(ROOT / "assets" / "cifar10-classifier"))
    p.add_argument("--grid-only", action="store_true", help="only re-render samples.png")
    p.add_argument("--threads", type=int, default=1, help="CPU threads the run trained on (for the card's wall time)")
    p.add_argument("--note", default=None, help="a paragraph for the card (e.g. what a fine-tune started from and why)")
    a = p.parse_args()
    run, dst = Path(a.run), ROOT / "assets" / a.name
    dst.mkdir(parents=True, exist_ok=True)
    export = Path(a.export) if a.export else run
    shutil.copy(export / "backbone.safetensors", dst / "backbone.safetensors")
    meta = json.loads((export / "backbone.json").read_text())
    (dst / "backbone.json").write_text(json.dumps(meta, indent=2))
    from rdpm_gddcm.autoencoders import load_autoencoder
    from rdpm_gddcm.data import build_dataset
    from rdpm_gddcm.train_backbone import sample_grid
    bb = load_backbone(str(dst))
    ae = load_autoencoder(meta["autoencoder_spec"])
    if a.grid_steps is None:
        a.grid_steps = 2 if hasattr(bb.family, "sampler_times") else 50
    # the grid comes from the shipped fp16 EMA weights as loaded (x̂0 clipping for pixel models)
    sample_grid(bb, ae, bb.num_classes, a.grid_steps, seed=0, path=dst / "samples.png")
    if a.grid_only:
        card = {**json.loads((dst / "card.json").read_text()), **images_seen(meta, run)}
        (dst / "card.json").write_text(json.dumps(card, indent=1))
        write_card_md(card, dst, a.grid_steps)
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
            "model": meta.get("model"), "steps": meta.get("steps", stats["steps"]), **images_seen(meta, run), "wall_min": stats["wall_min"], "threads": a.threads, "final_loss": stats["final_loss"],
            "training_images": len(train_lat), "command": a.command, "commit": a.commit, "note": a.note,
            "denoising_mse": denoising_mse(bb, x), "denoising_mse_linear_gaussian_floor": denoising_mse(floor, x),
            "denoising_space": "pixels in [-1, 1]" if meta["autoencoder"]["name"] == "pixels" else "taef2 latent",
            "num_val_images": a.num_val, "file_mb": (dst / "backbone.safetensors").stat().st_size / 2 ** 20,
            "grid_sampler": own_sampler_name(bb.family, a.grid_steps), "fid": fid_rows(bb, ae, a),
            "card_command": shlex.join(["python", "benchmarks/backbone_card.py", *sys.argv[1:]]),
            "loss_curve": stats["loss_curve"]}
    (dst / "card.json").write_text(json.dumps(card, indent=2))
    write_card_md(card, dst, a.grid_steps)
    print(json.dumps({k: card[k] for k in ("name", "steps", "wall_min", "final_loss", "denoising_mse",
                                            "denoising_mse_linear_gaussian_floor", "fid")}, indent=1))


if __name__ == "__main__":
    main()
