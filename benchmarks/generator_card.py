"""Package a trained generator run as a shipped asset with its card.

    python benchmarks/generator_card.py --run runs/cifar10-generator --name cifar10-generator \
        --backbone-asset cifar10-pixels-vp --command "<the exact training command>" \
        --tokenize-command "<the exact tokenize command>" --commit <git commit it was trained at> \
        [--sampling-from benchmarks/results/generator_tuning.json] [--fid-from benchmarks/results/generator_fid.json]

Copies generator.safetensors (EMA, fp16) into assets/NAME/ with a generator.json whose backbone
points at the shipped backbone relative to the asset (so `rdpm-sample --ckpt assets/NAME` works
from any working directory) and, with --sampling-from, the sampling setting of the lowest-FID
generator row of a tuning benchmark as the checkpoint's `rdpm-sample` defaults ("sampling").
Writes samples.png (one class per row, sampled from the asset with those defaults), and card.json +
CARD.md from the run's log (wall time, final training CE and token accuracy), val_metrics.json
(held-out CE and accuracy on tokens of CIFAR-10 `val` images) and, with --fid-from, the generator's
FID row of a benchmark JSON.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def log_stats(run: Path) -> dict:
    """Wall time, the last logged training CE / accuracy and the learning curve, from log.txt."""
    lines = (run / "log.txt").read_text().splitlines()
    stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S") for line in lines
              if (m := re.match(r"\[(.{19})\]", line))]
    curve = [(int(m.group(1)), float(m.group(2)), float(m.group(3))) for line in lines
             if (m := re.search(r"\] step (\d+) ce ([0-9.]+) acc ([0-9.]+)", line))]
    speeds = [float(m.group(1)) for line in lines if (m := re.search(r" ([0-9.]+) seq/s", line))]
    return {"wall_min": (stamps[-1] - stamps[0]).total_seconds() / 60, "steps": curve[-1][0],
            "final_train_ce": curve[-1][1], "final_train_accuracy": curve[-1][2],
            "median_seq_per_s": sorted(speeds)[len(speeds) // 2] if speeds else None,
            "curve": [{"step": s, "ce": c, "accuracy": a} for s, c, a in curve]}


def write_card_md(card: dict, dst: Path):
    """CARD.md from card.json (the prose cannot disagree with the numbers)."""
    g, t, v = card["generator"], card["tokens"], card.get("val")
    val = (f"- Held-out (tokens of {v['num_sequences']} CIFAR-10 `val` images, teacher-forced, EMA weights): "
           f"CE **{v['ce']:.3f}** nats/token, token accuracy **{100 * v['accuracy']:.2f} %** "
           f"(uniform guessing: CE {v['uniform_ce']:.3f}, accuracy {100 / t['codebook_size']:.3f} %).\n"
           f"- Per token map (row 0 = the init map, then chain steps 1..N), held-out accuracy: "
           f"{', '.join(f'{100 * a:.1f}' for a in v['accuracy_per_row'])} %.\n") if v else ""
    r = g.get("head_rank", 0)
    terms = ([f"a rank-{r} covariance term"] if r else []) + (["the isotropic term"] if g.get("head_isotropic") else [])
    rank = f" plus {' and '.join(terms)} (`generator.py`)" if terms else ""
    if g.get("history_maps"):
        rank += (f"; input: the chain state, the backbone's x̂0 and the codebook vectors chosen at each block by the "
                 f"previous {g['history_maps']} token maps (`--history-maps`)")
    if g.get("two_pass"):
        rank += ("; each token map drawn in two passes, one checkerboard half then the other given it "
                 "(`--two-pass`)")
    if g.get("map_passes", 1) > 1:
        rank += (f"; trained to draw each token map in {g['map_passes']} masked passes, each keeping its most "
                 "confident blocks and redrawing the others given them (`--map-passes`)")
    smp = card.get("sampling")
    if smp:
        knobs = f"CFG w = {smp['cfg_scale']}, τ = {smp['temperature']}" + \
            (f", top-k {smp['top_k']}" if smp.get("top_k") else "") + (f", top-p {smp['top_p']}" if smp.get("top_p", 1) < 1 else "") + \
            (f", the last {smp['min_norm_maps']} token maps minimum-norm" if smp.get("min_norm_maps") else "") + \
            (f", backbone CFG w_b = {smp['backbone_cfg_scale']}" if smp.get("backbone_cfg_scale", 1.0) != 1.0 else "") + \
            (f", {smp['map_passes']} passes per token map" if (smp.get("map_passes") or 1) > 1 else "") + \
            (f", CFG {smp['cfg_schedule']} schedule" if smp.get("cfg_schedule", "constant") != "constant" else "") + \
            (f", norm bias β = {smp['norm_bias']}" if smp.get("norm_bias") else "") + \
            (f", the init token map from the Gaussian init prior (w = {smp['init_prior_guidance']}, s = "
             f"{smp['init_prior_scale']})" if smp.get("init_prior", "off") != "off" else "")
        sampling = (f"`rdpm-sample` defaults to this checkpoint's tuned setting ({knobs}; recorded in generator.json "
                    f"\"sampling\", chosen as the {smp['tuned_by']}); flags override it.\n")
        shown = knobs
    else:
        sampling, shown = "", "CFG 2, τ = 1"
    prior = card.get("init_prior")
    prior_md = (f"\n- Init prior: `init_prior.safetensors` ({prior['mb']:.1f} MB, fp16), a class-conditional Gaussian over "
                f"the latent (rank {prior['rank']} per class) that draws the init token map jointly (`rdpm-sample "
                f"--init-prior gaussian`), fitted by `{prior['command']}` (`train/cifar10.sh` stage `init-prior`)."
                if prior else "")
    fid = card.get("fid")
    fid_md = (f"\n## Samples: FID\n{fid['num_images']:,} class-balanced samples with `rdpm-sample`'s defaults, "
              + (f"scored at {fid['fid_image_size']} px (the reference's resolution), "
                 if fid.get("fid_image_size") else "") +
              f"standard FID Inception against {fid['fid_reference']}: **FID-{fid['num_images'] // 1000}k "
              f"{fid['fid']:.1f}**, KID ×10³ {1e3 * fid['kid']:.1f}, class accuracy (the project's proxy "
              f"classifier) {100 * fid['class_accuracy']:.1f} %. Comparisons with the backbone's own sampler and "
              f"random tokens at the same count are in the README (`{fid['source']}`).\n") if fid else ""
    pr = card.get("precision")
    # the reason without the probe's model key (a long JSON): "auto: ...; timing probe: bf16 X ms vs fp32 Y ms"
    reason = re.sub(r"timing probe \(.*\):", "timing probe:", pr["reason"]) if pr else ""
    precision = (f"precision {'fp32' if pr['mode'] == 'no' else pr['mode']} ({reason})" if pr else
                 "fp32: bf16 autocast is slower for this model on this CPU, `benchmarks/results/generator_speed.json`")
    bb = card.get("backbone", {})
    bb_text = f"{bb.get('family', '?')} family, {bb.get('space', '?')}"
    stages = card.get("earlier_stages") or []
    earlier = "".join(
        f"- Stage {i + 1} (`{e['name']}`, whose EMA the next stage starts from with `--init-from`): tokenize "
        f"`{e['tokenize_command']}`; train `{e['command']}` (commit `{e['commit']}`; {e['steps']} steps on the "
        f"tokens of {e['training_images']} images, {e['wall_min']:.0f} min).\n" for i, e in enumerate(stages))
    if stages:
        earlier += f"- Stage {len(stages) + 1} (this run, continuing stage {len(stages)}'s weights with a fresh optimizer and schedule):\n"
    bindings = card.get("bindings") or []
    trained_on = bindings[0]["backbone_asset"] if bindings else card["backbone_asset"]
    bound = (f"Its weights were trained on the tokens of `assets/{trained_on}` (Training below) and are used "
             f"unchanged with `assets/{card['backbone_asset']}`, a fine-tuned continuation of that backbone's "
             "training run: the generator reads the chain's state and x̂0, which the newer backbone computes "
             "better, and its generator.json holds that backbone's tokens header (`generator_card.py --retune "
             "--backbone-asset`). "
             + "".join(f"With `{b['backbone_asset']}` it scored FID-{b['fid']['num_images'] // 1000}k {b['fid']['fid']:.1f}. "
                       for b in bindings if b.get("fid")) + "\n\n") if bindings else ""
    text = f"""# {card['name']}

A class-conditional CIFAR-10 RDPM-style generator over gDDCM token maps, trained by this project on
this project's CPU budget. It samples with the shipped backbone `assets/{card['backbone_asset']}` in
{t['num_steps']} chain steps (SPEC §9):

    rdpm-sample --ckpt assets/{card['name']} --num-samples 100 --sample-dir samples/cifar10

{bound}{sampling}
- Model: `{g['model']}` ({card['parameters_m']:.2f}M parameters; hidden {g['hidden']}, depth {g['depth']},
  {g['heads']} heads), {g['head']} head scoring the entries with the tokens' `{g['score']}` rule{rank}, EMA weights, fp16
  safetensors ({card['weights_mb']:.1f} MB).{prior_md}
- Tokens: `{trained_on}` ({bb_text}), plan `{t['plan']}` p={t['p']}, N={t['num_steps']} steps,
  grid {t['grid']} ({t['blocks']} blocks of {t['block_dim']} values), K={t['codebook_size']}, selection `{t['selection']}`,
  init `{t['init']}`, backbone called with the class label: {t['conditional']}. {t['num_token_rows']} token maps per image.

## Training
{earlier}- Tokenize (run at commit `{card['commit']}`): `{card['tokenize_command']}`
- Train: `{card['command']}`
- Data: {card['training_images']} CIFAR-10 `train` images (class-balanced, class-interleaved order),
  per-step states cached in the shards.
- {card['steps']} optimizer steps, wall time {card['wall_min']:.0f} min on this machine's 2 CPU cores
  (median {card['median_seq_per_s']:.0f} sequences/s; {precision}).{(" " + card["note"]) if card.get("note") else ""}
- Final training CE (mean of the last logging window): {card['final_train_ce']:.3f} nats/token; token accuracy
  {100 * card['final_train_accuracy']:.2f} %.
{val}{fid_md}
`samples.png`: {card.get('grid_note', 'the training run' + chr(39) + 's last class-conditional grid (one class per column)')}
({shown}).
"""
    (dst / "CARD.md").write_text(text)


def tuned_sampling(paths: list[Path], min_class_accuracy: float = 0.0) -> dict:
    """The setting of the lowest-FID generator row of bench_generator.py JSONs among those whose samples'
    class accuracy (the proxy classifier) is at least ``min_class_accuracy``, as generator.json's
    "sampling" record (what rdpm-sample uses when no flag is given)."""
    rows = [r for path in paths for r in json.loads(path.read_text())["rows"]
            if r.get("kind") == "generator" and r.get("fid") is not None]
    total = len(rows)
    rows = [r for r in rows if (r.get("class accuracy") or 0.0) >= min_class_accuracy]
    if not rows:
        raise SystemExit(f"--sampling-from {' '.join(map(str, paths))}: no generator row with an FID"
                         + (f" and class accuracy >= {min_class_accuracy}" if min_class_accuracy else ""))
    best = min(rows, key=lambda r: r["fid"])
    from rdpm_gddcm.init_prior import PRIOR_SETTINGS
    floor = (f" with class accuracy >= {100 * min_class_accuracy:.0f} % ({len(rows)} of {total} settings)"
             if min_class_accuracy else "")
    rel = [str(p.resolve().relative_to(ROOT)) if p.resolve().is_relative_to(ROOT) else str(p) for p in paths]
    return {"cfg_scale": best["cfg_scale"], "cfg_schedule": best.get("cfg_schedule", "constant"),
            "temperature": best["temperature"], "top_k": best.get("top_k") or 0, "top_p": best.get("top_p") or 1.0,
            "min_norm_maps": best.get("min_norm_maps") or 0, "backbone_cfg_scale": best.get("backbone_cfg_scale") or 1.0,
            "map_passes": best.get("map_passes") or 1, "norm_bias": best.get("norm_bias") or 0.0,
            **({k: best[k] for k in PRIOR_SETTINGS}
               if best.get("init_prior", "off") != "off" else {}),
            "tuned_by": f"lowest FID of {total} settings{floor}, {best['num_images']} samples each against "
                        f"{best['fid_reference']}, in {', '.join(rel)} (row '{best['label']}')"}


def generator_fid(path: Path, sampling: dict | None = None) -> dict:
    """The FID row of the generator at ``sampling`` (the recorded defaults), else the 'RDPM generator (ours)' row."""
    res = json.loads(path.read_text())
    if sampling:
        from report import same_setting          # benchmarks/report.py: how two rows' sampling settings compare
        row = next((r for r in res["rows"] if r["kind"] == "generator" and same_setting(r, sampling)), None)
        what = f"generator row at the recorded setting {({k: v for k, v in sampling.items() if k != 'tuned_by'})}"
    else:
        row = next((r for r in res["rows"] if r["label"] == "RDPM generator (ours)"), None)
        what = "'RDPM generator (ours)' row"
    if row is None or row.get("fid") is None:
        raise SystemExit(f"--fid-from {path}: no {what} with an FID")
    rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    return {"fid": row["fid"], "kid": row["kid"], "num_images": row["num_images"], "fid_reference": row["fid_reference"],
            "class_accuracy": row.get("class accuracy"), "cfg_scale": row["cfg_scale"],
            "temperature": row["temperature"], "min_norm_maps": row.get("min_norm_maps") or 0,
            "backbone_cfg_scale": row.get("backbone_cfg_scale") or 1.0, "map_passes": row.get("map_passes") or 1,
            "norm_bias": row.get("norm_bias") or 0.0, "source": str(rel),
            "fid_image_size": row.get("fid_image_size")}


def backbone_summary(backbone: Path) -> dict:
    c = json.loads((backbone / "card.json").read_text()) if (backbone / "card.json").exists() else {}
    ae = c.get("autoencoder") or "pixels"
    return {"family": c.get("family", "?"), "space": "pixel space" if ae in ("pixels", "pixel") else f"{ae} latent"}


def class_rows_grid(dst: Path, per_class: int = 10) -> str:
    """samples.png: ``per_class`` samples of every class, one class per row, with the asset's recorded
    sampling defaults (image i seeded by (0, i), as rdpm-sample does)."""
    import numpy as np
    from rdpm_gddcm.data import save_image_grid
    from rdpm_gddcm.sample import Sampler
    s = Sampler(str(dst))
    labels = np.repeat(np.arange(s.num_classes), per_class)
    imgs, _ = s.sample(np.arange(len(labels)), labels, global_seed=0)
    save_image_grid(imgs, str(dst / "samples.png"), nrow=per_class)
    return f"{per_class} samples per class with rdpm-sample's defaults, one class per row (classes 0-9 top to bottom), seed 0"


def bound_meta(meta: dict, tokens_dir: Path, backbone: Path, backbone_ref: str) -> dict:
    """generator.json ``meta`` bound to ``backbone`` (recorded as ``backbone_ref``): the tokens header of
    ``tokens_dir``, which must be this generator's tokenizer setting with only the backbone's weights (and
    precision) changed, made by that very backbone. SystemExit with one clear error otherwise."""
    from rdpm_gddcm.backbones import load_backbone
    from rdpm_gddcm.header import TokenHeader
    f = tokens_dir / "tokenizer_config.json"
    if not f.exists():
        raise SystemExit(f"error: --tokens-header-from {tokens_dir}: no tokenizer_config.json (an rdpm-tokenize "
                         "output directory)")
    header = json.loads(f.read_text())["header"]
    new, old = TokenHeader.from_json(header, source=str(f)), TokenHeader.from_json(meta["tokens_header"])
    diff = new.mismatch(old, ignore=TokenHeader.FINE_TUNE_FIELDS)
    if diff is not None:
        raise SystemExit(f"error: --tokens-header-from {tokens_dir}: another {diff[0]} than the generator's tokens "
                         f"({diff[1]} vs {diff[2]}); only the backbone's weights may differ")
    if load_backbone(str(backbone)).weights_hash() != new.backbone["sha256"]:
        raise SystemExit(f"error: {backbone} is not the backbone the tokens of --tokens-header-from were made with")
    return {**meta, "tokens_header": header, "backbone": backbone_ref}


def init_prior_record(dst: Path, previous: dict | None) -> dict | None:
    """The card's record of the asset's init prior (init_prior.py), if it has one."""
    from rdpm_gddcm.init_prior import PRIOR_FILE, GaussianInitPrior
    prior = GaussianInitPrior.load(dst)
    if prior is None:
        return None
    n = f" --num-images {prior.num_images}" if prior.num_images else ""
    command = (previous or {}).get("command") or \
        f"rdpm-fit-init-prior --ckpt assets/{dst.name} --data-path DATA/cifar10/train{n} --rank {prior.rank}"
    return {"mb": (dst / PRIOR_FILE).stat().st_size / 2 ** 20, "rank": prior.rank, "num_images": prior.num_images,
            "command": command}


def retune(dst: Path, a):
    """Re-record a shipped generator's "sampling" (the lowest-FID setting of --sampling-from), its card's FID
    (--fid-from) and samples.png; the weights and training record stay as they are. With --backbone-asset
    and --tokens-header-from it is also bound to another backbone of the same tokenizer (a fine-tuned one,
    e.g. the long run's decay phase): its generator.json then holds that backbone's tokens header, as
    ``rdpm-train --init-from`` accepts a generator of such a backbone."""
    meta_path, card_path = dst / "generator.json", dst / "card.json"
    if not meta_path.exists() or not card_path.exists():
        raise SystemExit(f"error: --retune {dst}: no generator.json and card.json there (a generator_card.py asset)")
    meta, card = json.loads(meta_path.read_text()), json.loads(card_path.read_text())
    if a.backbone_asset and a.backbone_asset != card["backbone_asset"]:
        if not a.tokens_header_from:
            raise SystemExit("error: --retune with another --backbone-asset needs --tokens-header-from TOKENS_DIR "
                             "(tokens that backbone made with this generator's tokenizer setting)")
        backbone = ROOT / "assets" / a.backbone_asset
        old_backbone = meta["tokens_header"].get("backbone", {})
        meta = bound_meta(meta, Path(a.tokens_header_from), backbone, f"../{a.backbone_asset}")
        card.setdefault("bindings", []).append({"backbone_asset": card["backbone_asset"],
                                                "backbone_sha256": old_backbone.get("sha256"), "fid": card.get("fid")})
        card.update(backbone_asset=a.backbone_asset, backbone=backbone_summary(backbone), fid=None)
    if a.sampling_from:
        sampling = tuned_sampling([Path(f) for f in a.sampling_from], a.min_class_accuracy)
        previous = {k: v for k, v in (meta.get("sampling") or {}).items() if k != "tuned_by"}
        if previous != {k: v for k, v in sampling.items() if k != "tuned_by"}:      # a re-run keeps the real previous
            card["previous_sampling"] = previous
        meta["sampling"] = card["sampling"] = sampling
    if a.fid_from:
        card["fid"] = generator_fid(Path(a.fid_from), meta.get("sampling"))
    meta_path.write_text(json.dumps(meta, indent=2))
    card["init_prior"] = init_prior_record(dst, card.get("init_prior"))
    card["grid_note"] = class_rows_grid(dst)
    card_path.write_text(json.dumps(card, indent=2))
    write_card_md(card, dst)
    print(f"re-tuned {dst}: backbone {card['backbone_asset']}, sampling "
          f"{({k: v for k, v in (meta.get('sampling') or {}).items() if k != 'tuned_by'})}"
          + (f", FID {card['fid']['fid']:.1f}" if card.get("fid") else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", help="the training run to package (required unless --retune)")
    p.add_argument("--retune", metavar="ASSET_DIR", default=None,
                   help="instead of packaging a run: re-record a shipped generator's sampling defaults (--sampling-from), "
                        "its FID (--fid-from) and samples.png, keeping its weights and training record")
    p.add_argument("--tokens-header-from", metavar="TOKENS_DIR", default=None,
                   help="--retune with another --backbone-asset: tokens of that backbone (their header is bound)")
    p.add_argument("--name")
    p.add_argument("--backbone-asset", help="the shipped backbone under assets/ the tokens were made with")
    p.add_argument("--command")
    p.add_argument("--tokenize-command")
    p.add_argument("--commit")
    p.add_argument("--note", default="", help="how the run went, for the card (interruptions, shared CPU, ...)")
    p.add_argument("--sampling-from", nargs="+", default=None, metavar="JSON",
                   help="bench_generator.py tuning JSONs: their lowest-FID generator row becomes rdpm-sample's default")
    p.add_argument("--min-class-accuracy", type=float, default=0.0,
                   help="--sampling-from: only settings whose samples reach this class accuracy (proxy classifier)")
    p.add_argument("--fid-from", default=None, metavar="JSON",
                   help="a bench_generator.py JSON whose generator row at the recorded setting (--sampling-from) is the "
                        "card's FID, else its 'RDPM generator (ours)' row")
    a = p.parse_args()
    if a.retune:
        if not (a.sampling_from or a.fid_from or a.backbone_asset):
            p.error("--retune needs --sampling-from, --fid-from or --backbone-asset (what to re-record)")
        return retune(Path(a.retune), a)
    missing = [f"--{k.replace('_', '-')}" for k in ("run", "name", "backbone_asset", "command", "tokenize_command", "commit")
               if not getattr(a, k)]
    if missing:
        p.error(f"packaging a run needs {', '.join(missing)} (or --retune ASSET_DIR to re-tune a shipped generator)")
    run, dst = Path(a.run), ROOT / "assets" / a.name
    meta = json.loads((run / "generator.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    # a continuation (--init-from a shipped generator): its card's training, read before dst may be overwritten
    source_card = ROOT / cfg["init_from"] / "card.json" if cfg.get("init_from") else None
    prev = json.loads(source_card.read_text()) if source_card and source_card.exists() else None
    earlier = (prev.get("earlier_stages") or []) + [
        {k: prev.get(k) for k in ("name", "command", "tokenize_command", "commit", "steps", "wall_min", "training_images")}
    ] if prev else []
    backbone = ROOT / "assets" / a.backbone_asset
    from rdpm_gddcm.backbones import load_backbone
    from rdpm_gddcm.header import TokenHeader
    h = TokenHeader.from_json(meta["tokens_header"], source=str(run / "generator.json"))
    if load_backbone(str(backbone)).weights_hash() != h.backbone["sha256"]:
        raise SystemExit(f"{backbone} is not the backbone these tokens were made with (weights hash differs)")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "generator.safetensors", dst / "generator.safetensors")
    from rdpm_gddcm.init_prior import PRIOR_FILE
    if (run / PRIOR_FILE).exists():                          # the run's init prior travels with its weights
        shutil.copy(run / PRIOR_FILE, dst / PRIOR_FILE)
    else:                                                    # and an earlier package's does not stay behind
        (dst / PRIOR_FILE).unlink(missing_ok=True)
    meta["backbone"] = f"../{a.backbone_asset}"          # resolved relative to the asset by rdpm-sample
    meta["train_config"] = {k: (v if not isinstance(v, str) or not Path(v).is_absolute() else Path(v).name)
                            for k, v in meta["train_config"].items()}
    sampling = tuned_sampling([Path(f) for f in a.sampling_from], a.min_class_accuracy) if a.sampling_from else None
    if sampling:
        meta["sampling"] = sampling
    (dst / "generator.json").write_text(json.dumps(meta, indent=2))
    grid_note = class_rows_grid(dst) if sampling else None
    if not grid_note:
        grids = sorted((run / "samples").glob("step_*.png"))
        if grids:
            shutil.copy(grids[-1], dst / "samples.png")
    g, plan = meta["generator"], h.plan
    from rdpm_gddcm.generator import GeneratorConfig, TokenGenerator, count_params
    params = count_params(TokenGenerator(GeneratorConfig(**g)))
    val = json.loads((run / "val_metrics.json").read_text())[-1] if (run / "val_metrics.json").exists() else None
    card = {"name": a.name, "backbone_asset": a.backbone_asset, "parameters_m": params / 1e6,
            "weights_mb": (dst / "generator.safetensors").stat().st_size / 2 ** 20,
            "generator": {**g, "model": meta["train_config"]["model"]},
            "tokens": {"plan": plan["kind"], "p": plan["config"]["p"], "num_steps": len(plan["steps"]),
                       "grid": "x".join(map(str, h.grid)), "blocks": g["num_blocks"], "block_dim": g["block_dim"],
                       "codebook_size": h.codebook_size, "selection": h.selection, "init": h.init,
                       "conditional": h.conditional, "num_token_rows": h.num_token_rows},
            "training_images": cfg["resolved"]["num_images"], **log_stats(run), "val": val,
            "command": a.command, "tokenize_command": a.tokenize_command, "commit": a.commit, "note": a.note,
            "backbone": backbone_summary(backbone), "sampling": sampling, "earlier_stages": earlier,
            "init_prior": init_prior_record(dst, None),
            "precision": cfg["resolved"].get("precision"),
            "fid": generator_fid(Path(a.fid_from), sampling) if a.fid_from else None}
    if grid_note:
        card["grid_note"] = grid_note
    (dst / "card.json").write_text(json.dumps(card, indent=2))
    write_card_md(card, dst)
    print(f"wrote {dst} ({card['weights_mb']:.1f} MB weights)")


if __name__ == "__main__":
    main()
