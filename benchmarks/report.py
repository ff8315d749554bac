"""Regenerate the README's result tables (and plots, when matplotlib is installed) from the JSON
files in benchmarks/results/. Tables live between ``<!-- table:NAME -->`` and ``<!-- /table -->``
markers in README.md; a table whose JSON is missing is left as it is.

    python benchmarks/report.py            # rewrite README.md in place
    python benchmarks/report.py --check    # exit 1 if README.md is out of date
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "benchmarks" / "results"


def load(name):
    p = RES / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def md(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def t_fidelity(name):
    d = load(name)
    if not d:
        return None
    n = d["rows"][0]["num_images"]
    with_rfid = any("rfid" in r for r in d["rows"])          # rFID first where measured (rdpm-reconstruct --rfid)
    rows = [(r["backbone_label"], r["plan_label"], *([f"{r['rfid']:.2f}" if "rfid" in r else "-"] if with_rfid else []),
             f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", r["bits_per_image"], f"{r['bpp']:.3f}",
             f"{r['seconds_per_image']:.2f}") for r in d["rows"]]
    head = ["backbone", "plan", *([f"rFID-{n} ↓"] if with_rfid else []), "PSNR (dB)", "SSIM", "bits/image", "bpp",
            "s/image"]
    rfid_note = (f"rFID: standard FID Inception, the {n} reconstructions against their own originals at the "
                 "tokenizer's resolution (floor 0; '-': not measured); " if with_rfid else "")
    return (md(head, rows) +
            f"\n\n{n} CIFAR-10 `val` images (class-balanced stride); PSNR/SSIM in pixels (taef2 rows: of the decoded "
            "64 px image against the 64 px original); " + rfid_note
            + "; ".join(f"`{c}`" for c in d.get("commands", [d["command"]])))


def t_jpeg():
    d = load("jpeg")
    if not d:
        return None
    subs = list(dict.fromkeys(r["subsampling"] for r in d["rows"]))
    by = {(r["quality"], r["subsampling"]): r for r in d["rows"]}

    def cells(r):
        if r is None:
            return ["", "", "", ""]
        ps = (f"{r['psnr']:.2f}" if r["psnr"] is not None else
              f"∞ on {r['identical_images']}/{r['num_images']} (others {r['psnr_over_changed_images']:.2f})")
        return [ps, f"{r['ssim']:.4f}", f"{r['bpp']:.3f}", f"{r['scan_bpp']:.3f}"]
    rows = [(q, *[c for sub in subs for c in cells(by.get((q, sub)))])
            for q in sorted({r["quality"] for r in d["rows"]})]
    head = ["quality"] + [f"{sub} {h}" for sub in subs for h in ("PSNR (dB)", "SSIM", "bpp (file)", "bpp (scan)")]
    return (md(head, rows) +
            f"\n\n{d['num_images']} CIFAR-10 `val` images (the fidelity tables' images), Pillow {d['pillow']} baseline "
            f"JPEG with optimised Huffman tables; bpp (file) = file bytes·8/(32·32), bpp (scan) counts only the "
            f"entropy-coded data (tables shared, as token bits are). The inputs are themselves q=75 JPEG, so JPEG "
            f"above q≈50 re-quantises onto the source's grid and is optimistic. `{d['command']}`")


def t_autoencoder():
    d = load("autoencoder")
    if not d:
        return None
    rows = [(size, "x".join(map(str, r["latent_shape"])), f"{r['psnr_db']:.2f}", f"{r['latent_std']:.3f}",
             f"{r['encode_ms_per_image']:.1f}", f"{r['decode_ms_per_image']:.1f}")
            for size, r in d["results_by_input_size"].items()]
    return md(["input px", "latent", "PSNR at 32 px (dB)", "latent std", "encode ms/img", "decode ms/img"], rows) + \
        f"\n\n{d['num_images']} CIFAR-10 `val` images, {d['threads']} thread; `{d['command']}`"


def t_overhead():
    d = load("overhead")
    if not d:
        return None
    rows = [(r["grid"], r["num_steps"], r["codebook_size"], r["batch"], f"{r['encode_s']:.2f}",
             f"{r['backbone_only_s']:.2f}", f"{r['ratio']:.3f}") for r in d["rows"]]
    m = d["memory"]
    return (md(["grid", "N", "K", "batch", "encode s", "backbone calls alone s", "ratio"], rows) +
            f"\n\nK={m['K']} (1D) encode: peak RSS {m['peak_rss_mib']:.0f} MiB, of which {m['rss_before_mib']:.0f} MiB before "
            f"encoding; the materialised codebook alone would be {m['full_codebook_would_be_mib']:.0f} MiB per step. "
            f"`{d['command']}`")


def t_speed():
    d = load("backbone_speed")
    if not d:
        return None
    rows = [(r["model"], f"{r['parameters']/1e6:.2f}M", r["precision"], f"{r['train_images_per_s']:.1f}",
             f"{r['sample_ms_per_image_per_step']:.2f}") for r in d["rows"]]
    return (md(["network", "params", "precision", "train img/s", "sampling ms/image/step"], rows) +
            f"\n\nbatch {d['rows'][0]['batch']}, {d['threads']} thread(s), load average at the end "
            f"{d['load_avg_before_end'][0]:.1f}; `{d['command']}`")


def t_classifier():
    d = load("classifier")
    if not d:
        return None
    return (f"Proxy classifier: {d['parameters']/1e6:.2f}M parameters, **{100*d['val_accuracy']:.2f} %** accuracy on all "
            f"{d['val_images']} CIFAR-10 `val` images, trained {d['train_epochs']} epochs in "
            f"{d['train_wall_seconds']/60:.1f} min on {d['train_threads']} CPU thread.")


BACKBONE_ASSETS = ("cifar10-pixels-vp", "cifar10-pixels-flow", "cifar10-taef2-edm", "cifar10-taef2-edm-long",
                   "cifar10-taef2-edm-2m", "cifar10-taef2-edm-3m", "cifar10-taef2-consistency")


def t_backbone_fid():
    """FID of each shipped backbone's own sampler, from the cards (benchmarks/backbone_card.py --fid-steps)."""
    rows, n, ref = [], None, None
    for name in BACKBONE_ASSETS:
        p = ROOT / "assets" / name / "card.json"
        c = json.loads(p.read_text()) if p.exists() else {}
        for r in c.get("fid") or []:
            n, ref = r["num_samples"], r["fid_reference"]
            rows.append((f"`assets/{name}`", c["family"], f"{c['images_seen']:,}" if c.get("images_seen") else "-",
                         r["sampler"], r["cfg_scale"], f"**{r['fid']:.1f}**", f"{100 * r['class_accuracy']:.1f} %",
                         f"{r['sample_s_per_image']:.3f}"))
    if not rows:
        return None
    return (md(["backbone", "family", "images seen", "own sampler", "CFG w", f"FID-{n // 1000}k ↓", "class acc. (proxy)",
                "s/image (sampling + decode)"], rows) +
            f"\n\n{n:,} class-balanced samples per row (one generator per image seed), standard FID Inception against "
            f"{ref}; real `train` images score 33.6 at this count. From each card.json: `python "
            "benchmarks/backbone_card.py --run RUN --export EXPORT --name NAME --fid-steps ...` (the exact command "
            "is in each asset's CARD.md).")


def t_backbones():
    rows = []
    for name in BACKBONE_ASSETS:
        p = ROOT / "assets" / name / "card.json"
        if p.exists():
            c = json.loads(p.read_text())
            ours, floor = c["denoising_mse"], c["denoising_mse_linear_gaussian_floor"]
            den = [f"{ours[k]:.4f} / {floor[k]:.4f}" for k in ours]
            rows.append((f"`assets/{name}`", c["family"], c["autoencoder"], c["parameters_m"], c["steps"],
                         f"{c['wall_min']:.0f}", f"{c['final_loss']:.4f}", *den))
    if not rows:
        return None
    sig = [k.split("=")[1] for k in json.loads((ROOT / "assets" / "cifar10-pixels-vp" / "card.json").read_text())["denoising_mse"]]
    return (md(["backbone", "family", "space", "params (M)", "steps", "wall (min)", "final loss",
                *[f"x̂0 MSE σ={s}: ours / Wiener" for s in sig]], rows) +
            "\n\nx̂0 MSE per value on CIFAR-10 `val` in the backbone's own space (pixels in [-1, 1], or the taef2 "
            "latent), against the linear-Gaussian (Wiener) denoiser fitted to the same training data; from each "
            "`assets/*/card.json` (`benchmarks/backbone_card.py`).")


# the generator's sampling knobs (rdpm_gddcm.sample.SAMPLING_DEFAULTS); rows written before a knob existed used
# its default: 0 for min_norm_maps, 1 (no guidance) for backbone_cfg_scale, 1 pass per map for map_passes, 0 (off)
# for norm_bias
KNOBS = ("cfg_scale", "cfg_schedule", "temperature", "top_k", "top_p", "min_norm_maps", "backbone_cfg_scale",
         "map_passes", "norm_bias", "init_prior", "init_prior_guidance", "init_prior_scale")
KNOB_DEFAULTS = {"min_norm_maps": 0, "backbone_cfg_scale": 1.0, "map_passes": 1, "norm_bias": 0.0, "init_prior": "off",
                 "init_prior_guidance": 1.0, "init_prior_scale": 1.0}


def knob(r: dict, k: str):
    return (r.get(k) or KNOB_DEFAULTS[k]) if k in KNOB_DEFAULTS else r.get(k)


def same_setting(a: dict, b: dict) -> bool:
    return all(knob(a, k) == knob(b, k) for k in KNOBS)


def _gen_rows(d):
    rows = []
    for r in d["rows"]:
        t = r.get("seconds_per_image", {})
        setting = {"generator": f"CFG w={r.get('cfg_scale')}, τ={r.get('temperature')}"
                   + (f", {r['cfg_schedule']} schedule" if r.get("cfg_schedule", "constant") != "constant" else "")
                   + (f", minimum-norm last {r['min_norm_maps']} maps" if r.get("min_norm_maps") else "")
                   + (f", backbone CFG w_b={r['backbone_cfg_scale']}" if knob(r, "backbone_cfg_scale") != 1.0 else "")
                   + (f", {r['map_passes']} passes per map" if knob(r, "map_passes") > 1 else "")
                   + (f", norm bias β={r['norm_bias']}" if knob(r, "norm_bias") else "")
                   + (f", Gaussian init prior w={r['init_prior_guidance']}, s={r['init_prior_scale']}"
                      if knob(r, "init_prior") != "off" else ""),
                   "ode": f"CFG w={r.get('cfg_scale')}", "ancestral": f"CFG w={r.get('cfg_scale')}",
                   "random": "uniform random indices", "real": "-", "tokens": "stored tokens, replayed",
                   "autoencoder": "encode + decode"}[r["kind"]]
        calls = {"generator": 10, "random": 10, "tokens": 10, "ode": r.get("steps"), "ancestral": r.get("steps"),
                 "real": "-", "autoencoder": "-"}[r["kind"]]
        rows.append((r["label"], setting, calls, f"{r['CIFAR-feature FD']:.1f}", f"{100 * r['class accuracy']:.1f} %",
                     *(f"{t.get(k, 0):.3f}" if r["kind"] != "real" else "-"
                       for k in ("backbone_and_chain_s", "transformer_s", "autoencoder_s"))))
    return rows


def t_generator():
    d = load("generator")
    if not d:
        return None
    extra = load("generator_ode100")            # the 100-step ODE row, run as its own process
    if extra:
        d = {**d, "rows": d["rows"] + [r for r in extra["rows"] if r["label"] not in {x["label"] for x in d["rows"]}]}
    order = {"generator": 0, "ode": 1, "ancestral": 2, "random": 3, "real": 4}
    d["rows"].sort(key=lambda r: (order[r["kind"]], r.get("steps") or 0))
    n = d["rows"][0]["num_images"]
    cmds = d.get("commands", []) + (extra.get("commands", []) if extra else [])
    return (md(["sampler", "setting", "steps", "CIFAR-feature FD ↓", "class accuracy ↑", "s/image backbone+chain",
                "s/image transformer", "s/image decode"], _gen_rows(d)) +
            f"\n\n{n} class-balanced samples per row against all 5,000 CIFAR-10 `val` images; CIFAR-feature FD and class "
            f"accuracy are this project's CPU proxies (a CIFAR-10 classifier's features), **not FID**. Seconds per image "
            f"on 1 CPU thread while another benchmark used the second core. " + "; ".join(f"`{c}`" for c in cmds))


def t_generator_ablations():
    """The previous generator's ablations: FID/KID from generator_ablations_fid.json (re-run with the
    standard Inception), rows only the older proxy run has (other generators) from generator_ablations.json."""
    d, fid = load("generator_ablations"), load("generator_ablations_fid")
    if not d:
        return None
    n = d["rows"][0]["num_images"]
    if not fid:
        return (md(["variant", "setting", "steps", "CIFAR-feature FD ↓", "class accuracy ↑", "s/image backbone+chain",
                    "s/image transformer", "s/image decode"], _gen_rows(d)) +
                f"\n\n{n} class-balanced samples per row (fewer than the table above: compare rows within this table "
                f"only); proxies, not FID. " + "; ".join(f"`{c}`" for c in d.get("commands", [])))
    have = {r["label"] for r in fid["rows"]}
    rows = []
    for r, base in zip(fid["rows"] + [r for r in d["rows"] if r["label"] not in have],
                       _gen_rows({"rows": fid["rows"] + [r for r in d["rows"] if r["label"] not in have]})):
        rows.append((*base[:2], f"{r['fid']:.1f}" if "fid" in r else "-", f"{r['kid'] * 1e3:.1f}" if "kid" in r else "-",
                     *base[3:5], f"{sum(r.get('seconds_per_image', {}).values()):.3f}"))
    nf = fid["rows"][0]["num_images"]
    return (md(["variant", "setting", f"FID-{nf} ↓", "KID ×10³ ↓", "CIFAR-feature FD ↓ (proxy)", "class accuracy ↑ (proxy)",
                "s/image"], rows) +
            f"\n\n{nf} class-balanced samples per row (fewer than the table above: compare rows within this table only); "
            f"FID/KID with the standard FID Inception against {fid['rows'][0]['fid_reference']}, biased upward at this "
            f"count. Rows with '-' are from the earlier proxy-only run ({n} samples): those generators' training runs "
            "were not kept. " + "; ".join(f"`{c}`" for c in fid.get("commands", []) + d.get("commands", [])))


def t_generator_heads():
    rows = []
    heads = (("cifar10-generator", "tied, linear (SPEC §9, `dot` rule)"),
             ("cifar10-generator-rank4", "tied + rank-4 covariance term"),
             ("cifar10-generator-untied", "untied linear over K"))
    for run, head in heads:
        p = RES / f"val_{run}.json"
        if p.exists():
            v = [h for h in json.loads(p.read_text()) if h["step"] == 1000]
            if v:
                rows.append((head, 1000, f"{v[0]['ce']:.3f}", f"{100 * v[0]['accuracy']:.2f} %",
                             " / ".join(f"{a:.2f}" for a in v[0]["ce_per_row"])))
    if not rows:
        return None
    return (md(["head", "step", "held-out CE (nats/token)", "held-out token accuracy",
                "held-out CE per token map 0..N (nats)"], rows) +
            "\n\nThe same command (gen-mini, seed, data order, LR schedule to 2800 steps) but the head; the EMA export at "
            "step 1000 scored teacher-forced on the tokens of 500 CIFAR-10 `val` images (uniform guessing: CE 8.318). "
            "From each run's `val_metrics.json`, copied to `benchmarks/results/val_*.json`.")


def t_portability():
    d = load("portability")
    if not d:
        return None
    names = {"native": "this machine (AVX-512 + AMX bf16)", "avx2": "as an AVX2-only CPU (`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`)"}
    rows = []
    for m in d["modes"]:
        demo = m.get("demo")
        rows.append((names.get(m["mode"], m["mode"]), "`make demo` from nothing (`python -m rdpm_gddcm.demo`)",
                     f"{demo['wall_s'] / 60:.1f} min" if demo else "-", "-", "-", "-"))
        for n in m["networks"]:
            rows.append(("", n["network"], "", f"{n['fp32_s'] * 1e3:.0f} ms", f"{n['bf16_s'] * 1e3:.0f} ms "
                         f"({n['bf16_over_fp32']:.2f}x)", "bf16" if n["auto"] == "bf16" else "fp32"))
    return (md(["CPU", "what", "wall time", "fp32", "bf16 autocast", "`auto` picks"], rows) +
            f"\n\n{d['machine']['cores']} cores, {d['modes'][0]['threads']} torch threads; medians after a warm-up; each "
            f"mode in a fresh process with an empty probe cache. `{d['command']}`")


def t_fid_reference():
    d = load("fid_reference")
    if not d:
        return None
    rows = [(r["pair"], f"{r['n1']:,} vs {r['n2']:,}", f"{r['fid']:.2f}", f"{r['kid'] * 1e3:.2f} ± {r['kid_std'] * 1e3:.2f}")
            for r in d["rows"]]
    rz = d["resize"]
    rows.append(("resize check: val vs train, TorchScript + torch-fidelity's TF1 resize",
                 f"{rz['images_per_side']:,} vs {rz['images_per_side']:,}", f"{rz['fid_torch_fidelity_resize']:.2f}", "-"))
    rows.append(("resize check: the same with the NVIDIA/StyleGAN resize",
                 f"{rz['images_per_side']:,} vs {rz['images_per_side']:,}", f"{rz['fid_nvidia_resize']:.2f}", "-"))
    s = d["feature_cost"]["train"]
    return (md(["pair (CIFAR-10, JPEG q75 copy)", "images", "FID", "KID ×10³"], rows) +
            f"\n\nStandard FID Inception ({d['inception']['source']}, converted for torch-fidelity, sha256 "
            f"`{d['inception']['converted_sha256'][:16]}…`); Inception features cost {s['seconds_per_image_per_process']:.3f} s "
            f"per image per process ({s['processes']} processes of {s['threads_per_process']} thread(s) each on this CPU, "
            f"while other jobs shared the cores: an upper bound). Published: train vs test ≈ {d['published']['cifar10_train_vs_test_fid']} "
            f"({d['published']['note']}). `{d['command']}`")


def t_generator_fid():
    d = load("generator_fid")
    if not d:
        return None
    rows = []
    for r, base in zip(d["rows"], _gen_rows(d)):
        fid = f"{r['fid']:.1f}" if r.get("fid") is not None else "- (in the reference)"
        kid = f"{r['kid'] * 1e3:.1f}" if r.get("kid") is not None else "-"
        rows.append((base[0], base[1], base[2], fid, kid, *base[3:]))
    ref = load("fid_reference")
    floor = ""
    refname = next((r["fid_reference"] for r in d["rows"] if r.get("fid_reference")), "?")
    if ref:
        want = "train 1,000 vs val" if "val" in refname else "val 1,000 vs train"
        f = [x for x in ref["rows"] if x["pair"].startswith(want)]
        if f:
            floor = (f" Real-data floor at this count: {f[0]['fid']:.1f} ({f[0]['pair']}, from "
                     f"`benchmarks/results/fid_reference.json`).")
    n = d["rows"][0]["num_images"]
    return (md(["sampler", "setting", "steps", f"FID-{n // 1000}k ↓", "KID ×10³ ↓", "CIFAR-feature FD ↓ (proxy)",
                "class accuracy ↑ (proxy)", "s/image backbone+chain", "s/image transformer", "s/image decode"], rows) +
            f"\n\n{n:,} class-balanced samples per row; FID and KID with the standard FID Inception against {refname}; "
            f"the proxies against the 5,000 `val` images.{floor} Seconds per image measured while other jobs shared "
            f"the 2 cores (upper bounds). " + "; ".join(f"`{c}`" for c in d.get("commands", [])))


def _merged(*names):
    """Rows and commands of several results JSONs (one benchmark run as parallel processes), or None."""
    parts = [d for d in map(load, names) if d]
    if not parts:
        return None
    # each row keeps its run's thread count (its seconds per image depend on it)
    return {"rows": [{"threads": d.get("threads"), **r} for d in parts for r in d["rows"]],
            "commands": [c for d in parts for c in d.get("commands", [])]}


def _latent_fid():
    """generator_fid_latent.json (the generator row) + generator_fid_latent_b.json (the baselines, run
    as a second process at the same time) + generator_fid_latent_c.json (the generator at later
    defaults) + generator_fid_latent_xs.json (the larger generator) + the history and two-pass
    continuations of gen-mini, one table."""
    return _merged("generator_fid_latent", "generator_fid_latent_b", "generator_fid_latent_c",
                   "generator_fid_latent_xs", "generator_fid_latent_hist", "generator_fid_latent_2pass",
                   "generator_fid_latent_longer", "generator_fid_latent_2m", "generator_fid_edm2m",
                   "generator_fid_edm2m_b", "generator_fid_latent_3m", "generator_fid_edm3m", "generator_fid_edm3m_b",
                   "generator_fid_latent_3m_scratch", "generator_fid_latent_prior")


def _latent_tuning():
    """Every latent generator's tuning rows (FID-500 against `train`), one benchmark run per JSON."""
    return _merged("generator_tuning", "generator_tuning_b", "generator_tuning_c", "generator_tuning_d",
                   "generator_tuning_e", "generator_tuning_xs", "generator_tuning_hist", "generator_tuning_hist_b",
                   "generator_tuning_hist_c", "generator_tuning_hist_d")


# bench_generator rows record which generator they sampled (`generator_model`, `generator_parameters_m`)
# since the second latent generator; every latent-generator row benchmarked before sampled gen-mini
# (runs/gen-latent, then the shipped asset)
GEN_MINI = {"generator_model": "gen-mini", "generator_parameters_m": 1.260321}
# other gen-mini runs with the shipped generator's size, input and head (a continuation of it, one trained the same
# way on another backbone's tokens), told apart from it by the run a row sampled (bench_generator records it as
# `generator`)
SAME_SHAPE_RUNS = {"runs/gen-latent-longer": "gen-mini + 1,200 steps",
                   "runs/gen-latent-3m": "gen-mini trained on edm-3m's tokens"}


def generator_of(r: dict) -> dict:
    """The name (size, and its token history or two passes when it has them) and parameters (millions) of
    the generator a latent bench_generator row sampled."""
    g = {k: r.get(k, v) for k, v in GEN_MINI.items()}
    if r.get("generator") in SAME_SHAPE_RUNS:
        g["generator_model"] = SAME_SHAPE_RUNS[r["generator"]]
    if r.get("generator_history_maps"):
        g["generator_model"] += f" + history {r['generator_history_maps']}"
    if r.get("generator_two_pass"):
        g["generator_model"] += " + two passes"
    if (r.get("generator_map_passes") or 1) > 1:
        g["generator_model"] += f" + masked passes (trained for {r['generator_map_passes']})"
    return g


def shipped_sampling() -> dict:
    """The shipped generator's recorded `rdpm-sample` defaults (generator.json "sampling")."""
    return json.loads((ROOT / "assets" / "cifar10-generator" / "generator.json").read_text()).get("sampling") or {}


def is_shipped_generator(r: dict) -> bool:
    """Whether a latent bench_generator row sampled the shipped generator (same size as its card's)."""
    size = json.loads((ROOT / "assets" / "cifar10-generator" / "card.json").read_text())["parameters_m"]
    return abs(generator_of(r)["generator_parameters_m"] - size) < 1e-3 and r.get("generator") not in SAME_SHAPE_RUNS


def shipped_row(rows: list, bound: bool = False) -> dict | None:
    """The shipped generator's row sampled with its recorded `rdpm-sample` defaults (``bound``: and with the
    backbone it is bound to now, not an earlier one)."""
    rec = shipped_sampling()
    return next((r for r in rows if r["kind"] == "generator" and same_setting(r, rec) and is_shipped_generator(r)
                 and (not bound or backbone_of(r) == shipped_backbone())), None)


def shipped_row_without_prior(rows: list, bound: bool = False) -> dict | None:
    """``shipped_row`` at the recorded setting with the init prior off: the chain the diagnostics ran (they
    predate the prior and draw the generator's own init map)."""
    rec = {**shipped_sampling(), "init_prior": "off", "init_prior_guidance": 1.0, "init_prior_scale": 1.0}
    return next((r for r in rows if r["kind"] == "generator" and same_setting(r, rec) and is_shipped_generator(r)
                 and (not bound or backbone_of(r) == shipped_backbone())), None)


def backbone_of(r: dict) -> str:
    """The backbone asset a latent row ran (rows before the re-binding did not record it: the edm-long one)."""
    return Path(r.get("backbone_asset") or "assets/cifar10-taef2-edm-long").name


def shipped_backbone() -> str:
    """The backbone the shipped generator is bound to (its card's)."""
    return json.loads((ROOT / "assets" / "cifar10-generator" / "card.json").read_text())["backbone_asset"]


# the latent backbones the shipped generator has sampled with, newest first (tables list them in this order)
BACKBONE_SHORT = {"cifar10-taef2-edm-3m": "edm-3m", "cifar10-taef2-edm-2m": "edm-2m", "cifar10-taef2-edm-long": "edm-long"}


# the backbone whose tokens every latent generator was trained on
TRAINED_ON = "cifar10-taef2-edm-long"


def backbone_rank(name: str) -> int:
    """A backbone's place in the tables: the one the shipped generator is bound to first, then newest first."""
    return -1 if name == shipped_backbone() else list(BACKBONE_SHORT).index(name) if name in BACKBONE_SHORT else 99


def t_generator_fid_latent():
    """The latent generator against its backbone's own samplers, random tokens and the previous
    generator, all FID-1k against `val` (1,000 class-balanced samples, image i seeded by (0, i)); rows of
    every backbone the shipped weights have been bound to, the one it is bound to now first."""
    d = _latent_fid()
    if not d:
        return None
    rows = []
    total = lambda r: sum(r.get("seconds_per_image", {}).values())  # noqa: E731
    shipped, now = shipped_row(d["rows"], bound=True), shipped_backbone()
    # the shipped weights at their recorded setting with each backbone they were bound to before
    earlier = [r for r in (shipped_row_without_prior([x for x in d["rows"] if backbone_of(x) == bb]) for bb in BACKBONE_SHORT
                           if bb != now) if r is not None]
    no_prior = shipped_row_without_prior(d["rows"], bound=True)
    order = lambda r: (r is not shipped, r not in earlier, backbone_rank(backbone_of(r)),  # noqa: E731
                       r["kind"] != "generator")
    for r in sorted(d["rows"], key=order):
        setting = _gen_rows({"rows": [r]})[0][1]
        calls = {"generator": "10 + 1", "random": "10 + 1", "tokens": "10 + 1", "real": "-", "autoencoder": "-"}.get(
            r["kind"], r.get("steps"))
        if r["kind"] == "generator" and not is_shipped_generator(r):
            note = f" ({generator_of(r)['generator_model']}, {generator_of(r)['generator_parameters_m']:.2f}M: not shipped)"
        elif r in earlier:
            note = (" (the shipped weights with the backbone they were trained on, before the re-binding)"
                    if backbone_of(r) == TRAINED_ON else " (the shipped weights bound to an earlier backbone)")
        elif r is no_prior and r is not shipped:
            note = " (the shipped weights with their own init map: the earlier default)"
        else:
            note = " (earlier default)" if r["kind"] == "generator" and r is not shipped else ""
        rows.append((r["label"] + note, BACKBONE_SHORT.get(backbone_of(r), backbone_of(r)),
                     setting, calls, f"**{r['fid']:.1f}**" if r is shipped else f"{r['fid']:.1f}",
                     f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %",
                     (f"{total(r):.3f}" + (f" ({r['threads']} threads)" if (r.get("threads") or 1) > 1 else ""))
                     if r["kind"] != "real" else "-"))
    for bb in sorted({backbone_of(r) for r in d["rows"]}, key=backbone_rank):
        card = json.loads((ROOT / "assets" / bb / "card.json").read_text())
        for r in card.get("fid") or []:
            rows.append((f"backbone's own {r['sampler']} (its card)", BACKBONE_SHORT.get(bb, bb), f"CFG w={r['cfg_scale']}",
                         r["sampler"].split("= ")[-1].split(" ")[0], f"{r['fid']:.1f}", "-",
                         f"{100 * r['class_accuracy']:.1f} %", f"{r['sample_s_per_image']:.3f}"))
    old = load("generator_fid")
    for r in (old or {}).get("rows", []):
        if r["kind"] == "generator":
            rows.append(("previous generator (`gen-mini`, pixel VP-ε tokens of 8,192 images)", "pixels-vp",
                         f"CFG w={r['cfg_scale']}, τ={r['temperature']}", "10 + 1", f"{r['fid']:.1f}",
                         f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %", f"{total(r):.3f}"))
    ref = load("fid_reference")
    floor = [x for x in (ref or {}).get("rows", []) if x["pair"].startswith("train 1,000 vs val")]
    if floor:
        rows.append(("real CIFAR-10 `train` images (the floor at this count)", "-", "-", "-", f"{floor[0]['fid']:.1f}",
                     f"{floor[0]['kid'] * 1e3:.1f}", "-", "-"))
    n = d["rows"][0]["num_images"]
    return (md(["sampler", "backbone", "setting", "network calls", f"FID-{n // 1000}k ↓", "KID ×10³ ↓",
                "class accuracy ↑ (proxy)", "s/image"], rows) +
            f"\n\n{n:,} class-balanced samples per row (image i seeded by (0, i)), scored at 32 px (the 64 px samples "
            f"box-filtered, see above), standard FID Inception against {d['rows'][0]['fid_reference']}. Backbones: "
            + ", ".join(f"{short} = `assets/{bb}`" for bb, short in BACKBONE_SHORT.items())
            + f" (every latent generator here was trained on {BACKBONE_SHORT[TRAINED_ON]}'s tokens unless its row says otherwise; the shipped one "
            f"now samples with {BACKBONE_SHORT.get(now, now)}). The "
            "generator's network calls: 10 chain steps plus the final ODE step "
            f"(each chain step also runs the transformer, twice with CFG). Seconds per image: this table's rows in "
            f"fp32 on one thread per process (two processes shared the 2 cores) unless marked, the card rows as their card says, the "
            f"floor from `benchmarks/results/fid_reference.json`. " + "; ".join(f"`{c}`" for c in d.get("commands", [])))


# the two token plans compared with edm-3m: label, then the results JSONs of the stored train tokens decoded, of
# random tokens through the chain, of gen-mini trained from scratch on the plan's train tokens (the shipped recipe),
# and that run's val_metrics.json (copied to benchmarks/results)
TOKEN_PLANS = [
    ("trajectory p=0.7, N=10, last net σ 0.02 (the shipped tokens' plan)", "generator_fid_plan_te002_7",
     "generator_fid_latent_3m", "generator_fid_latent_3m_scratch", "val_cifar10-generator-3m"),
    ("the same, last net σ 0.5, 3-step Heun finish", "generator_fid_plan_te05_7", "generator_fid_plan_te05_3",
     "generator_fid_latent_te05", "val_cifar10-generator-te05"),
]


def t_generator_token_plan():
    """Two token plans over edm-3m, the chain's bounds (stored `train` tokens decoded, random tokens) and gen-mini
    trained from scratch on each plan's tokens (held-out CE and per-map accuracy from its val_metrics.json, FID-1k
    against `val`)."""
    def cell(r):
        return f"{r['fid']:.1f} (KID ×10³ {r['kid'] * 1e3:.1f}, {100 * r['class accuracy']:.1f} %)"

    rows, commands, ref = [], [], None
    for label, decoded, random_, gen, val in TOKEN_PLANS:
        parts = [load(n) for n in (decoded, random_, gen)]
        metrics = load(val)
        if not all(parts) or not metrics:
            return None
        dec = next((r for r in parts[0]["rows"] if r["kind"] == "tokens"), None)
        rnd = next((r for r in parts[1]["rows"] if r["kind"] == "random"), None)
        g = next((r for r in parts[2]["rows"] if r["kind"] == "generator"), None)
        if not (dec and rnd and g):
            return None
        m = metrics[-1]
        acc = " / ".join(f"{100 * a:.0f}" for a in m["accuracy_per_row"][4:9])
        rows.append((label, cell(dec), cell(rnd), f"{m['ce']:.2f}", acc, _gen_rows({"rows": [g]})[0][1],
                     f"**{g['fid']:.1f}**", f"{g['kid'] * 1e3:.1f}", f"{100 * g['class accuracy']:.1f} %"))
        commands += [c for d in parts for c in d.get("commands", []) if c not in commands]
        ref = g["fid_reference"]
    n = load(TOKEN_PLANS[0][3])["rows"][0]["num_images"]
    return (md(["plan (edm-3m)", f"stored `train` tokens, decoded (a perfect generator): FID-{n // 1000}k",
                f"random tokens, same plan: FID-{n // 1000}k", "gen-mini: held-out CE (nats/token)",
                "gen-mini: token accuracy, maps 4 / 5 / 6 / 7 / 8 (%)", "gen-mini: setting",
                f"gen-mini: FID-{n // 1000}k ↓", "KID ×10³ ↓", "class accuracy ↑ (proxy)"], rows) +
            f"\n\n{n:,} class-balanced samples per FID cell (image i seeded by (0, i), the same seeds in every cell), 32 px, "
            f"standard FID Inception against {ref}. gen-mini: 1.26M parameters, trained from scratch on the plan's "
            "tokens of all 50,000 `train` images for 3,300 steps of 64 (the shipped recipe), held-out CE and "
            "per-map token accuracy teacher-forced on the tokens of 500 `val` images (uniform guessing 8.318), from "
            "each run's `val_metrics.json` (copied to `benchmarks/results/val_cifar10-generator-{3m,te05}.json`); the "
            "shipped plan's generator at the shipped setting (not re-tuned), the raised plan's at the number of "
            "minimum-norm maps chosen on the tuning set (`generator_tuning_te05.json`). "
            + "; ".join(f"`{c}`" for c in commands))


def t_generator_token_plan_tuning():
    """gen-mini on the raised plan's tokens: its sampling settings by FID-500 against the tuning set."""
    d = load("generator_tuning_te05")
    if not d:
        return None
    rows = [(s, f"{r['fid']:.1f}", f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %")
            for r, (_, s, *_) in sorted(zip(d["rows"], _gen_rows(d)), key=lambda x: x[0]["fid"])]
    r0, rec = d["rows"][0], shipped_sampling()
    shipped = next((r for r in (load("generator_tuning_3m") or {"rows": []})["rows"] if same_setting(r, rec)), None)
    if shipped is None:
        return None
    return (md(["setting", f"FID-{r0['num_images']} ↓ (vs train, tuning)", "KID ×10³ ↓", "class accuracy ↑ (proxy)"], rows)
            + f"\n\n{r0['num_images']} class-balanced samples per setting against {r0['fid_reference']}: the tuning set, "
            f"not the `val` images results are reported on (the shipped generator with edm-3m scores {shipped['fid']:.1f} there "
            f"at its setting, {_gen_rows({'rows': [shipped]})[0][1]}: the knobs table). 32 px, standard FID Inception. "
            + "; ".join(f"`{c}`" for c in d.get("commands", [])))


def t_generator_init_prior():
    """The shipped weights with the Gaussian init prior (init_prior.py) against their own init maps, by FID-1k on the
    tuning set (bench_generator.py --init-prior-guidance-sweep / --init-prior-scale-sweep)."""
    d = _merged("generator_tuning_prior", "generator_tuning_prior_b")
    if not d:
        return None
    rows = [(s, f"{r['fid']:.1f}", f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %")
            for r, (_, s, *_) in sorted(zip(d["rows"], _gen_rows(d)), key=lambda x: x[0]["fid"])]
    r0 = d["rows"][0]
    return (md(["setting (edm-3m, the shipped weights)", f"FID-{r0['num_images'] // 1000}k ↓ (vs train, tuning)",
                "KID ×10³ ↓", "class accuracy ↑ (proxy)"], rows)
            + f"\n\n{r0['num_images']:,} class-balanced samples per setting (image i seeded by (0, i)) against "
            f"{r0['fid_reference']}: the tuning set, not the `val` images results are reported on. 32 px, standard FID "
            "Inception. The prior: `assets/cifar10-generator/init_prior.safetensors`, fitted on the latents of the first "
            "10,000 `train` images (class-interleaved, 1,000 per class; rank 256). "
            + "; ".join(f"`{c}`" for c in d.get("commands", [])))


def t_generator_midmaps():
    """The shipped generator with its middle token maps (rows 4-6) replayed from one real `train` image
    (bench_generator.py --suite diagnostics, rows 15-16), against the generator alone (main table), FID-1k vs `val`."""
    d, fid = load("generator_diagnostics_midmaps"), _latent_fid()
    alone = shipped_row_without_prior(fid["rows"], bound=True) if fid else None
    if not d or alone is None:
        return None
    rows = [("the shipped weights alone, their own init map (main table)", "the generator", alone)]
    rows += [(r["label"].split(",")[0], "one same-class `train` image" if r.get("true_from", "same class") == "same class"
              else "one `train` image of any class", r) for r in d["rows"]]
    n = d["rows"][0]["num_images"]
    return (md(["chain", "token maps 4-6 (σ 16 → 1.8)", f"FID-{n // 1000}k ↓", "KID ×10³ ↓", "class accuracy ↑ (proxy)"],
               [(a, b, f"{r['fid']:.1f}", f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %") for a, b, r in rows])
            + f"\n\n{n:,} class-balanced samples per row (image i seeded by (0, i), the same seeds in every row), 32 px, "
            f"standard FID Inception against {d['rows'][0]['fid_reference']}; the shipped weights and edm-3m at the "
            f"setting of their time ({_gen_rows({'rows': [alone]})[0][1]}; the generator's own init map, before the init "
            "prior) in every row, its choices in the other maps. The "
            "real images' tokens are edm-3m's tokens of `train` images (the shipped plan), never the reference's. "
            + "; ".join(f"`{c}`" for c in d.get("commands", [])))


def t_token_coherence():
    """How coherent one image's chosen codebook vectors are within a token map and across maps
    (bench_token_coherence.py): real `val` tokens, the shipped generator's samples, the generator's picks given
    the real images' chains (teacher-forced), uniformly random tokens."""
    d = load("token_coherence")
    if not d:
        return None
    s = d["sets"]
    R = d["rows_sampled"]
    prior = d.get("init_prior")
    within = ("real", "generator", *(("with_init_prior",) if prior else ()), "after_real_init", "given_real",
              "given_real_argmax", "random")
    across = ("real", "generator", "random")
    rows = [(r, *(f"{s[k]['neighbour'][r]:+.3f}" for k in within),
             *((f"{s[k]['next_map'][r]:+.3f}" if r + 1 < R else "-") for k in across),
             *(f"{s[k]['with_real'][r]:+.3f}" for k in ("given_real", "given_real_argmax")))
            for r in range(R)]
    sm = d["sampling"]
    return (md(["token map", "within the map: real `val` tokens", "within: the generator (its own chain)",
                *((f"within: its own chain, init map from the Gaussian prior (w={prior['init_prior_guidance']}, "
                   f"s={prior['init_prior_scale']})",) if prior else ()),
                "within: its own chain from the real init map", "within: the generator's draws given the real chain", "within: its most likely tokens given the real chain",
                "within: random", "with the next map: real", "with the next map: the generator",
                "with the next map: random", "cosine with the real pick: its draw", "cosine with the real pick: its most likely"],
               rows)
            + f"\n\nExcess cosine between the unit-length codebook vectors one image chose for two blocks: horizontally "
            "and vertically adjacent blocks of one map (within), or one block in this map and the next (with the next "
            "map), minus the same with the second block taken from another image of the same class. "
            f"{d['num_images']} images per set: the edm-3m tokens of the first {d['num_images']} `val` images, the "
            f"shipped generator's class-balanced samples (image i seeded by (0, i)) at its setting (CFG w={sm['cfg_scale']}, "
            f"τ={sm['temperature']}, minimum-norm last {sm['min_norm_maps']} maps, left out: one fixed entry per block), "
            "the generator's draws at that setting and its most likely tokens when the chain replays the real images' "
            "tokens (teacher-forced, each image's own class; the blocks still drawn independently given the state), "
            "its own chain at that setting started from the real image's init map (token map 0; its class), "
            "and uniformly random tokens (zero up to noise). The last two columns: the mean cosine between a "
            "teacher-forced pick and the entry the encoder chose for that block. "
            f"`{d['command']}`")


def t_generator_half_shown():
    """The masked-pass generator over edm-3m's tokens: held-out CE per token map with nothing of the map shown
    and with one checkerboard half of its true tokens shown (val_metrics.json), and its tuning FID-500 in one
    pass and in four confidence-ranked passes against the shipped weights'."""
    m, d, base = load("val_cifar10-generator-masked-3m"), load("generator_tuning_masked_3m"), load("generator_tuning_3m")
    if not (m and d and base):
        return None
    m = m[-1]
    shipped = next((r for r in base["rows"] if same_setting(r, shipped_sampling())), None)
    if shipped is None:
        return None
    R, M = len(m["ce_per_row"]), d["rows"][0].get("min_norm_maps") or 0       # the last M maps are not sampled
    rows = [(r, f"{m['ce_per_row'][r]:.3f}", f"{m['ce_second_pass_per_row'][r]:.3f}",
             f"{m['ce_per_row'][r] - m['ce_second_pass_per_row'][r]:+.3f}") for r in range(R - M)]
    fids = [("the shipped weights (gen-mini, no masked input)", shipped)] + \
        [(f"the masked-pass generator, {r['map_passes']} pass{'es' if r['map_passes'] > 1 else ''} per map", r)
         for r in sorted(d["rows"], key=lambda r: r["map_passes"])]
    n = d["rows"][0]["num_images"]
    return (md(["token map", "held-out CE, nothing shown (nats/token)", "half of the map shown", "difference"], rows)
            + "\n\n" + md([f"sampler (edm-3m, {_gen_rows({'rows': [shipped]})[0][1]})", f"FID-{n} ↓ (vs train, tuning)",
                            "KID ×10³ ↓", "class accuracy ↑ (proxy)"],
                           [(a, f"{r['fid']:.1f}", f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %")
                            for a, r in fids])
            + f"\n\nHeld-out CE teacher-forced on the edm-3m tokens of 500 `val` images, overall {m['ce']:.3f} with nothing "
            f"shown and {m['ce_second_pass']:.3f} with a checkerboard half shown (scored on the other half; uniform "
            f"guessing {m['uniform_ce']:.3f}), from the run's `val_metrics.json` (copied to "
            f"`benchmarks/results/val_cifar10-generator-masked-3m.json`); token maps {R - M}-{R - 1} are minimum-norm when sampling. "
            f"FID-{n}: {n} class-balanced samples against {d['rows'][0]['fid_reference']} (the tuning set), 32 px, "
            "standard FID Inception; the shipped weights' row is the knobs table's. "
            + "; ".join(f"`{c}`" for c in d.get("commands", [])))


def t_generator_masked():
    """The stack over the decayed backbone (assets/cifar10-taef2-edm-2m): the masked-pass generator continued
    from the shipped gen-mini on its tokens, sampled in P passes and in one, against the new backbone's own
    ODE (its card), random and decoded tokens of the same tokenizer, and the shipped stack; FID-1k vs `val`."""
    d = _merged("generator_fid_masked", "generator_fid_masked_b")
    card_path = ROOT / "assets" / "cifar10-taef2-edm-2m" / "card.json"
    if not d or not card_path.exists():
        return None
    total = lambda r: sum(r.get("seconds_per_image", {}).values())  # noqa: E731
    rows = []
    for r in sorted(d["rows"], key=lambda r: ({"generator": 0, "random": 2, "tokens": 3}.get(r["kind"], 4),
                                              -(r.get("map_passes") or 1))):
        name = r["label"] + (f" ({generator_of(r)['generator_model']}, {generator_of(r)['generator_parameters_m']:.2f}M)"
                             if r["kind"] == "generator" else "")
        passes = f", {r['map_passes']} pass{'es' if r['map_passes'] > 1 else ''} per map" \
            if r["kind"] == "generator" and r["map_passes"] == 1 else ""
        rows.append((name, "edm-2m", _gen_rows({"rows": [r]})[0][1] + passes,
                     "10 + 1", f"{r['fid']:.1f}", f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %",
                     f"{total(r):.3f}" + (f" ({r['threads']} threads)" if (r.get("threads") or 1) > 1 else "")))
    for r in json.loads(card_path.read_text()).get("fid") or []:
        rows.append((f"backbone's own {r['sampler']} (its card)", "edm-2m", f"CFG w={r['cfg_scale']}",
                     r["sampler"].split("= ")[-1].split(" ")[0], f"{r['fid']:.1f}", "-",
                     f"{100 * r['class_accuracy']:.1f} %", f"{r['sample_s_per_image']:.3f}"))
    old = _latent_fid()
    shipped = shipped_row(old["rows"]) if old else None
    if shipped:
        rows.append(("the shipped generator (gen-mini) over its own tokens (main table)", "edm-long",
                     _gen_rows({"rows": [shipped]})[0][1], "10 + 1", f"{shipped['fid']:.1f}",
                     f"{shipped['kid'] * 1e3:.1f}", f"{100 * shipped['class accuracy']:.1f} %", f"{total(shipped):.3f}"))
    n = d["rows"][0]["num_images"]
    return (md(["sampler", "backbone", "setting", "network calls", f"FID-{n // 1000}k ↓", "KID ×10³ ↓",
                "class accuracy ↑ (proxy)", "s/image"], rows) +
            f"\n\n{n:,} class-balanced samples per row (image i seeded by (0, i)), scored at 32 px, standard FID "
            f"Inception against {d['rows'][0]['fid_reference']}. edm-2m: `assets/cifar10-taef2-edm-2m`; edm-long: "
            "`assets/cifar10-taef2-edm-long`. Seconds per image in fp32 on one thread per process; the edm-2m generator "
            "rows shared the 2 cores with two or three other jobs (their times are high), the card rows as their card "
            "says. "
            + "; ".join(f"`{c}`" for c in d.get("commands", [])))


def t_fid_resolution():
    """The same kept samples scored at the latent stack's 64 px and at the reference's 32 px."""
    d64, d32 = load("generator_fid_latent_64px"), _merged("generator_fid_latent", "generator_fid_latent_b",
                                                          "generator_fid_latent_former_default")
    if not d64 or not d32:
        return None
    same = lambda a, b: a["label"] == b["label"] and same_setting(a, b)  # noqa: E731
    ref = load("fid_reference")
    floor = [x for x in (ref or {}).get("rows", []) if x["pair"].startswith("train 1,000 vs val")]
    rows = []
    for r in d64["rows"]:
        other = next((x for x in d32["rows"] if same(r, x)), None)      # the same samples, scored at 32 px
        if r["kind"] == "real" and floor:
            other = {"fid": floor[0]["fid"]}                  # the 32 px originals: the floor row
        label = r["label"] + (f" (CFG w={r['cfg_scale']}, τ={r['temperature']})" if r["kind"] == "generator" else "")
        rows.append((label, f"{r['fid']:.1f}", f"{other['fid']:.1f}" if other else "-"))
    return (md(["samples (1,000, class-balanced)", "FID-1k scored at 64 px ↓", "FID-1k scored at 32 px (the reference's) ↓"],
               rows) +
            "\n\nStandard FID Inception against CIFAR-10 `val` (5,000 images, 32 px); the 32 px column downsamples each "
            "64 px image with a 2x2 box filter (`rdpm_gddcm.metrics.resize_uint8`), the default of `rdpm-eval` "
            "(`--fid-image-size reference`) and `bench_generator.py`. The real images' 32 px value is the floor row of "
            "`fid_reference.json` (the same images, not upsampled). " + "; ".join(
                f"`{c}`" for c in d64.get("commands", []) + (load("generator_fid_latent_former_default") or {}).get(
                    "commands", [])))


def t_headline():
    """The README's first figure's caption: the shipped generator's FID from its benchmark JSON."""
    d = _latent_fid()
    if not d:
        return None
    g, bb = shipped_row(d["rows"], bound=True), shipped_backbone()
    if not g:
        return None
    card = json.loads((ROOT / "assets" / bb / "card.json").read_text())
    own = list(card.get("fid") or []) + [{"fid": r["fid"], "sampler": r["label"].replace("backbone ", "")}
                                         for r in d["rows"] if r["kind"] in ("ode", "ancestral") and backbone_of(r) == bb]
    best = min(own or [{}], key=lambda r: r.get("fid", 1e9))
    ref = load("fid_reference")
    floor = [x for x in (ref or {}).get("rows", []) if x["pair"].startswith("train 1,000 vs val")]
    classes = "airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck"
    return (f"*The shipped generator (`assets/cifar10-generator`), 10 chain steps with `rdpm-sample`'s defaults "
            f"(CFG w = {g['cfg_scale']}, τ = {g['temperature']}"
            + (f", the last {g['min_norm_maps']} token maps minimum-norm" if g.get("min_norm_maps") else "")
            + (f", backbone CFG w_b = {g['backbone_cfg_scale']}" if knob(g, "backbone_cfg_scale") != 1.0 else "")
            + (f", the init token map from its Gaussian init prior at w = {g['init_prior_guidance']}"
               if knob(g, "init_prior") != "off" else "")
            + f"), one class per row ({classes}). "
            f"**FID-{g['num_images'] // 1000}k {g['fid']:.1f}** against {g['fid_reference']} "
            f"({g['num_images']:,} class-balanced samples; class accuracy {100 * g['class accuracy']:.0f} % by the proxy "
            f"classifier)"
            + (f"; at the same count real `train` images score {floor[0]['fid']:.1f}" if floor else "")
            + (f", its backbone's (`{bb}`) own best sampler {best['fid']:.1f} ({best['sampler']})" if best else "")
            + ". From `benchmarks/results/generator_fid_latent*.json` and `generator_fid_edm*.json`; the table is under "
              "[Results](#class-conditional-cifar-10-in-10-steps-the-shipped-latent-generator).*")


def t_generator_tuning():
    """The sampling settings tried for each latent generator, scored against `train` features (the
    tuning set; results are reported against `val`)."""
    d = _latent_tuning()
    if not d:
        return None
    rs = sorted(d["rows"], key=lambda r: (not is_shipped_generator(r), r["fid"]))
    rec = shipped_sampling()
    chosen = lambda r: bool(rec) and same_setting(r, rec) and is_shipped_generator(r)  # noqa: E731
    rows = [(generator_of(r)["generator_model"], r["label"],
             _gen_rows({"rows": [r]})[0][1] + (f", top-k {r['top_k']}" if r.get("top_k") else ""),
             f"{r['fid']:.1f}" + (" (chosen)" if chosen(r) else ""), f"{r['kid'] * 1e3:.1f}",
             f"{100 * r['class accuracy']:.1f} %") for r in rs]
    n = rs[0]["num_images"]
    cmds = d["commands"]
    return (md(["generator", "row", "setting", f"FID-{n}" + " ↓ (vs train)", "KID ×10³ ↓", "class accuracy ↑ (proxy)"],
               rows) +
            f"\n\n{n} class-balanced samples per setting against {rs[0]['fid_reference']}: the tuning set, not the "
            "`val` images results are reported on. The shipped generator first, best first within each; the chosen "
            "setting, the lowest FID among those whose "
            "samples reach 60 % class accuracy (the issue's bar), is recorded in the shipped generator.json as "
            "`rdpm-sample`'s default (`benchmarks/generator_card.py --sampling-from ... --min-class-accuracy 0.6`). "
            "Rows without \"minimum-norm\" sample every token map (`--min-norm-maps 0`; they were run before that "
            "setting existed, so their commands do not pass it). "
            + "; ".join(f"`{c}`" for c in cmds))


# the tuning JSON each re-binding re-checked the setting in
TUNING_OF = {"cifar10-taef2-edm-2m": "generator_tuning_2m", "cifar10-taef2-edm-3m": "generator_tuning_3m"}


def t_generator_knobs():
    """The shipped weights' sampling settings against the first 5,000 `train` images' features (the tuning
    set): the norm bias and CFG schedules with edm-long, then the setting re-checked with each newer backbone
    at its re-binding (edm-2m, edm-3m)."""
    d = _merged("generator_tuning_f", "generator_tuning_2m", "generator_tuning_3m")
    if not d:
        return None
    rec, now = shipped_sampling(), shipped_backbone()
    chosen = lambda r: same_setting(r, rec) and backbone_of(r) == now  # noqa: E731
    rs = sorted(d["rows"], key=lambda r: (backbone_rank(backbone_of(r)), r["fid"]))
    rows = [(BACKBONE_SHORT.get(backbone_of(r), backbone_of(r)), r["label"], _gen_rows({"rows": [r]})[0][1],
             f"{r['fid']:.1f}" + (" (chosen)" if chosen(r) else ""), f"{r['kid'] * 1e3:.1f}",
             f"{100 * r['class accuracy']:.1f} %") for r in rs]
    n = rs[0]["num_images"]
    return (md(["backbone", "row", "setting", f"FID-{n} ↓ (vs train)", "KID ×10³ ↓", "class accuracy ↑ (proxy)"], rows) +
            f"\n\n{n} class-balanced samples per setting against {rs[0]['fid_reference']}: the tuning set (its FID "
            "is not comparable with the older tuning tables', whose reference held 20,000 images), not the `val` "
            "images results are reported on. The shipped weights (gen-mini) in every row; the chosen setting is the "
            f"lowest FID with {BACKBONE_SHORT.get(now, now)} among those reaching 65 % class accuracy "
            "(`benchmarks/generator_card.py --retune assets/cifar10-generator --sampling-from "
            f"benchmarks/results/{TUNING_OF.get(now, 'generator_tuning_f')}.json --min-class-accuracy 0.65`). " + "; ".join(f"`{c}`" for c in d.get("commands", [])))


def t_generator_sizes():
    """gen-mini against the larger gen-xs, trained on the same tokens: held-out CE (each run's
    val_metrics.json, copied to benchmarks/results/val_cifar10-generator-*.json), FID-500 against
    `train` (the tuning set) and FID-1k against `val`, both at the shipped generator's recorded setting,
    and each one's best tuning row."""
    runs = [("gen-mini", "latent"), ("gen-xs", "xs")]
    ce = {name: load(f"val_cifar10-generator-{key}") for name, key in runs}
    tune = _latent_tuning()
    fid = _latent_fid()
    if not all(ce.values()) or not tune or not fid:
        return None
    rec = shipped_sampling()
    rows = []
    for name, _ in runs:
        v = ce[name][-1]
        mine = lambda rs: [r for r in rs if r["kind"] == "generator" and generator_of(r)["generator_model"] == name]  # noqa: E731
        at = next((r for r in mine(tune["rows"]) if same_setting(r, rec)), None)
        val = next((r for r in mine(fid["rows"]) if same_setting(r, rec)), None)
        best = min((r for r in mine(tune["rows"]) if r["class accuracy"] >= 0.6), key=lambda r: r["fid"], default=None)
        if at is None or val is None or best is None:
            return None
        rows.append((name + (" (shipped)" if is_shipped_generator(val) else ""),
                     f"{generator_of(val)['generator_parameters_m']:.2f}M", f"{v['step']:,}", f"{v['ce']:.3f}",
                     " / ".join(f"{c:.2f}" for c in v["ce_per_row"][4:7]),
                     " / ".join(f"{100 * a:.1f}" for a in v["accuracy_per_row"][4:7]),
                     f"{at['fid']:.1f}", f"{val['fid']:.1f}", f"{100 * val['class accuracy']:.1f} %",
                     f"{sum(val['seconds_per_image'].values()):.3f}",
                     f"{best['fid']:.1f} ({_gen_rows({'rows': [best]})[0][1]})"))
    n1, n2 = at["num_images"], val["num_images"]
    return (md(["generator", "parameters", "steps (×64)", "held-out CE ↓", "CE, maps 4 / 5 / 6 ↓",
                "token accuracy, maps 4 / 5 / 6 (%) ↑", f"FID-{n1} ↓ (vs train, tuning)", f"FID-{n2 // 1000}k ↓ (vs val)",
                "class accuracy ↑ (proxy)", "s/image", f"best FID-{n1} tried (setting)"], rows) +
            f"\n\nBoth trained on the same tokens (all 50,000 `train` images), batch 64, LR 1e-3 with warm-up and cosine "
            f"decay, from scratch, as two 1-thread CPU processes (`train/cifar10.sh` stages `generator` and "
            f"`generator-xs`). Held-out CE and token accuracy: teacher-forced on the tokens of 500 `val` images "
            f"(uniform guessing 8.318). FID columns at the shipped setting (CFG w = {rec.get('cfg_scale')}, "
            f"τ = {rec.get('temperature')}, the last {rec.get('min_norm_maps') or 0} token maps minimum-norm), 32 px, "
            f"standard FID Inception, FID-{n1} against {at['fid_reference']}, FID-{n2 // 1000}k against "
            f"{val['fid_reference']}; seconds per image in fp32 on one thread (two processes shared the 2 cores); the "
            f"last column: the lowest tuning FID among the settings tried for that generator with class accuracy "
            f">= 60 %. " + "; ".join(f"`{c}`" for c in (load("generator_tuning_xs") or {}).get("commands", [])
                                     + (load("generator_fid_latent_xs") or {}).get("commands", [])))


def t_generator_backbone_guidance():
    """The shipped generator with classifier-free guidance moved into the chain's backbone calls
    (rdpm-sample --backbone-cfg-scale): FID-500 against `train` (the tuning set) by generator CFG w and
    backbone guidance w_b, and FID-1k against `val` where measured."""
    tune = _merged("generator_tuning_bbcfg", "generator_tuning_bbcfg_b")
    fid = _merged("generator_fid_latent", "generator_fid_latent_c", "generator_fid_latent_bbcfg")
    shipped_tune, rec = _latent_tuning(), shipped_sampling()
    if not tune or not fid or not shipped_tune or not rec:
        return None
    base = next((r for r in shipped_tune["rows"] if is_shipped_generator(r) and same_setting(r, rec)), None)
    if base is None:
        return None
    rows = []
    for r in sorted([base] + tune["rows"], key=lambda r: (r["cfg_scale"], knob(r, "backbone_cfg_scale"))):
        val = next((v for v in fid["rows"] if v["kind"] == "generator" and same_setting(v, r)), None)
        rows.append((f"{r['cfg_scale']}", f"{knob(r, 'backbone_cfg_scale')}" + (" (shipped)" if r is base else ""),
                     f"{r['fid']:.1f}", f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %",
                     f"{val['fid']:.1f} ({100 * val['class accuracy']:.1f} %)" if val else "-",
                     f"{sum(r['seconds_per_image'].values()):.3f}"))
    n, n2 = base["num_images"], fid["rows"][0]["num_images"]
    return (md(["generator CFG w", "backbone CFG w_b", f"FID-{n} ↓ (vs train, tuning)", "KID ×10³ ↓",
                "class accuracy ↑ (proxy)", f"FID-{n2 // 1000}k ↓ (vs val) (class accuracy)", "s/image"], rows) +
            f"\n\nThe shipped gen-mini, τ = {rec.get('temperature')}, the last {rec.get('min_norm_maps') or 0} token maps "
            f"minimum-norm; {n} class-balanced samples per setting against {base['fid_reference']} (the tuning set), "
            f"FID-{n2 // 1000}k against {fid['rows'][0]['fid_reference']}; 32 px, standard FID Inception; seconds per "
            "image in fp32 on one thread (two processes shared the 2 cores, so they vary with the other's load). "
            + "; ".join(f"`{c}`" for c in tune["commands"] + [c for c in fid["commands"] if "backbone-cfg" in c]))


def t_generator_history():
    """gen-mini against its continuation with the token-history input: held-out CE per token map (each
    run's val_metrics.json, copied to benchmarks/results/val_cifar10-generator-*.json), FID-500 against
    `train` (the tuning set) by number of minimum-norm maps, and FID-1k against `val`."""
    runs = [("gen-mini", "latent"), ("gen-mini + history 10", "hist")]
    ce = {name: load(f"val_cifar10-generator-{key}") for name, key in runs}
    tune, fid = _latent_tuning(), _latent_fid()
    diag = _merged("generator_diagnostics_rows03", "generator_diagnostics_rows03_hist")
    if not all(ce.values()) or not tune or not fid or not diag:
        return None
    sweep = sorted({r.get("min_norm_maps") or 0 for r in tune["rows"]
                    if generator_of(r)["generator_model"] == runs[1][0]})
    base = {"cfg_scale": 2.0, "temperature": 1.0, "cfg_schedule": "constant", "top_k": 0, "top_p": 1.0}
    rows = []
    for name, _ in runs:
        v = ce[name][-1]
        mine = lambda rs: [r for r in rs if r["kind"] == "generator" and generator_of(r)["generator_model"] == name]  # noqa: E731
        at = {m: next((r for r in mine(tune["rows"]) if same_setting(r, {**base, "min_norm_maps": m})), None)
              for m in sweep}
        val = min(mine(fid["rows"]), key=lambda r: r["fid"], default=None)
        own = next((r for r in diag["rows"] if generator_of(r)["generator_model"] == name and not r.get("true_rows")), None)
        true = next((r for r in diag["rows"] if generator_of(r)["generator_model"] == name and r.get("true_rows")), None)
        if val is None or own is None or true is None:
            return None
        rows.append((name + (" (shipped)" if is_shipped_generator(val) else ""),
                     f"{generator_of(val)['generator_parameters_m']:.2f}M", f"{v['ce']:.3f}",
                     " / ".join(f"{c:.2f}" for c in v["ce_per_row"][4:7]),
                     " / ".join(f"{c:.2f}" for c in v["ce_per_row"][7:]),
                     " / ".join(f"{at[m]['fid']:.1f}" if at[m] else "-" for m in sweep),
                     f"{own['fid']:.1f} / {true['fid']:.1f}",
                     f"{val['fid']:.1f} ({_gen_rows({'rows': [val]})[0][1]})", f"{100 * val['class accuracy']:.1f} %",
                     f"{sum(val['seconds_per_image'].values()):.3f} ({val['threads']})"))
    t = next(r for r in tune["rows"] if generator_of(r)["generator_model"] == runs[1][0])
    n2 = fid["rows"][0]["num_images"]
    return (md(["generator", "parameters", "held-out CE ↓", "CE, maps 4 / 5 / 6 ↓", "CE, maps 7 / 8 / 9 / 10 ↓",
                f"FID-{t['num_images']} ↓ (vs train), minimum-norm last " + " / ".join(map(str, sweep)) + " maps",
                f"FID-{diag['rows'][0]['num_images']} ↓ (vs val), every map sampled: its own maps 0-3 / true maps 0-3",
                f"FID-{n2 // 1000}k ↓ (vs val; setting)", "class accuracy ↑ (proxy)", "s/image (threads)"], rows) +
            f"\n\nHeld-out CE: teacher-forced on the tokens of 500 `val` images (uniform guessing 8.318), from each run's "
            f"`val_metrics.json` (copied to `benchmarks/results/val_cifar10-generator-{{latent,hist}}.json`). FID-"
            f"{t['num_images']} at CFG w = 2, τ = 1 against {t['fid_reference']} (the tuning set; \"-\": not run); "
            f"FID-{n2 // 1000}k against {fid['rows'][0]['fid_reference']} at each generator's best setting measured "
            f"there; the diagnostics column: CFG w = 2, τ = 1, every token map sampled, either all by the generator or "
            f"maps 0-3 replayed from a `train` image of the same class and the generator after (`bench_generator.py "
            f"--suite diagnostics`, rows 0 and 9); 32 px, standard FID Inception; seconds per image in fp32 with that "
            f"many threads (the run's `threads`). "
            + "; ".join(f"`{c}`" for name in ("generator_tuning_hist", "generator_tuning_hist_b", "generator_tuning_hist_c",
                                             "generator_tuning_hist_d", "generator_fid_latent_hist",
                                             "generator_diagnostics_rows03", "generator_diagnostics_rows03_hist")
                        for c in (load(name) or {}).get("commands", [])))


def t_generator_two_pass():
    """gen-mini against its continuation with two-pass maps (--two-pass): FID-500 against `train` images
    5,000-9,999 (the tuning set of this comparison, both generators sampled in one run) and FID-1k against
    `val` at the shipped setting."""
    tune = _merged("generator_tuning_2pass_base", "generator_tuning_2pass")
    fid, rec = _latent_fid(), shipped_sampling()
    if not tune or not fid or not rec:
        return None
    rows = []
    for two in (False, True):
        mine = lambda rs: [r for r in rs if r["kind"] == "generator" and bool(r.get("generator_two_pass")) == two  # noqa: E731
                           and generator_of(r)["generator_model"] in ("gen-mini", "gen-mini + two passes")]
        val = next((r for r in mine(fid["rows"]) if same_setting(r, rec)), None)
        if val is None:
            return None
        for t in sorted(mine(tune["rows"]), key=lambda r: (not same_setting(r, rec), r["fid"])):
            rows.append((generator_of(t)["generator_model"] + ("" if two else " (shipped)"),
                         f"{generator_of(t)['generator_parameters_m']:.2f}M", _gen_rows({"rows": [t]})[0][1],
                         f"{t['fid']:.1f}", f"{t['kid'] * 1e3:.1f}", f"{100 * t['class accuracy']:.1f} %",
                         f"{val['fid']:.1f} ({100 * val['class accuracy']:.1f} %)" if same_setting(t, val) else "-",
                         f"{sum(t['seconds_per_image'].values()):.3f}"))
    t0 = tune["rows"][0]
    n2 = fid["rows"][0]["num_images"]
    return (md(["generator", "parameters", "setting", f"FID-{t0['num_images']} ↓ (vs train, tuning)", "KID ×10³ ↓",
                "class accuracy ↑ (proxy)", f"FID-{n2 // 1000}k ↓ (vs val) (class accuracy)", "s/image"], rows) +
            f"\n\nFID-{t0['num_images']}: class-balanced samples against {t0['fid_reference']} (the tuning set of this "
            f"comparison: both generators sampled in one run, so its numbers are not comparable with the other tuning "
            f"tables' reference); FID-{n2 // 1000}k against {fid['rows'][0]['fid_reference']} at the shipped setting (the "
            "shipped row is the main table's); 32 px, standard FID Inception; seconds per image in fp32 on one thread "
            "(two processes shared the 2 cores). "
            + "; ".join(f"`{c}`" for c in tune["commands"] + (load("generator_fid_latent_2pass") or {}).get("commands", [])))


def t_generator_isotropic():
    """The shipped generator against its continuation with the isotropic head term: held-out CE (each
    run's val_metrics.json, copied to benchmarks/results/val_*.json) and FID."""
    iso, base = load("generator_fid_latent_iso"), load("generator_fid_latent")
    tune_iso = load("generator_tuning_iso")
    tune = _merged("generator_tuning", "generator_tuning_b", "generator_tuning_c", "generator_tuning_d", "generator_tuning_e")
    ce = {k: load(f"val_cifar10-generator-{k}") for k in ("latent", "isotropic")}
    if not iso or not base or not tune_iso or not all(ce.values()):
        return None
    rows = []
    for name, fid_rows, tune_rows, v in (
            ("shipped: 3,300 steps, no isotropic term", base["rows"], tune["rows"], ce["latent"][-1]),
            ("+ 2,500 steps with the isotropic term (`--init-from`)", iso["rows"], tune_iso["rows"], ce["isotropic"][-1])):
        g = next(r for r in fid_rows if r["kind"] == "generator")
        for t in tune_rows:        # the settings tried for the continuation, for both
            if not any(same_setting(t, x) for x in tune_iso["rows"]):
                continue
            at_default = same_setting(t, g)
            rows.append((name, f"{v['ce']:.3f}", f"{v['ce_per_row'][-1]:.2f}",
                         f"CFG w={t['cfg_scale']}, τ={t['temperature']}"
                         + (f", minimum-norm last {t['min_norm_maps']} maps" if t.get("min_norm_maps") else ""),
                         f"{t['fid']:.1f}",
                         f"**{g['fid']:.1f}**" if at_default else "-",
                         f"{100 * g['class accuracy']:.1f} %" if at_default else "-"))
    n1, n2 = tune_iso["rows"][0]["num_images"], iso["rows"][0]["num_images"]
    return (md(["generator", "held-out CE (nats/token)", "CE, last map", "setting", f"FID-{n1} ↓ (vs train, tuning)",
                f"FID-{n2 // 1000}k ↓ (vs val)", "class accuracy ↑ (proxy)"], rows) +
            f"\n\nHeld-out CE: teacher-forced on the tokens of 500 `val` images (uniform guessing 8.318), from each run's "
            f"`val_metrics.json` (copied to `benchmarks/results/val_cifar10-generator-{{latent,isotropic}}.json`). FID at "
            f"32 px, standard FID Inception; FID-{n1} against {tune_iso['rows'][0]['fid_reference']}, FID-{n2 // 1000}k "
            f"against {iso['rows'][0]['fid_reference']} at CFG w = 2, τ = 1 (the shipped default). "
            + "; ".join(f"`{c}`" for c in iso.get("commands", []) + tune_iso.get("commands", [])))


def t_generator_diagnostics():
    """Where the generator loses FID: its chain with the stored tokens of `train` images in some rows."""
    d = _merged("generator_diagnostics", "generator_diagnostics_b", "generator_diagnostics_c",
                "generator_diagnostics_d")   # parallel processes
    if not d:
        return None
    rows = []
    for r in d["rows"]:
        true = r.get("true_rows")
        if true is None:
            which = "none"
        else:
            which = f"{min(true)}-{max(true)}" if true == list(range(min(true), max(true) + 1)) else ", ".join(map(str, true))
            which += f" ({r.get('true_from', 'same class')})"
        rows.append((r["label"], which, f"{r['fid']:.1f}", f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %"))
    n = d["rows"][0]["num_images"]
    g = d["rows"][0]
    return (md(["chain", "rows with stored `train` tokens", f"FID-{n} ↓", "KID ×10³ ↓", "class accuracy ↑ (proxy)"], rows) +
            f"\n\n{n} class-balanced samples per row (image i seeded by (0, i)), 32 px, standard FID Inception against "
            f"{g['fid_reference']} (the stored tokens are `train`'s). The generator's rows use its "
            f"settings of the time (CFG w = {g['cfg_scale']}, τ = {g['temperature']}, every token map sampled: "
            "`--min-norm-maps 0`); the class given to the chain "
            "is the row's class also where other images' tokens (any class) fill rows. "
            + "; ".join(f"`{c}`" for c in d["commands"]))


def t_generator_handoff():
    """The generator's first k chain steps, then the backbone's ancestral sampler (bench_generator.py
    diagnostics rows 10-11, 13-14), against the shipped generator alone and the backbone's ancestral sampler alone
    (main table rows, the same protocol); FID-1k vs `val`."""
    d = _merged("generator_handoff", "generator_handoff_b", "generator_handoff_c")
    main = _latent_fid()
    gen_json = ROOT / "assets" / "cifar10-generator" / "generator.json"
    if not d or not main or not gen_json.exists():
        return None
    steps = json.loads(gen_json.read_text())["tokens_header"]["plan"]["steps"]
    total = lambda r: sum(r.get("seconds_per_image", {}).values())  # noqa: E731
    bound = backbone_of(d["rows"][0])          # the backbone the hand-off rows ran (the binding of their time)
    cells = lambda r: (f"{r['fid']:.1f}", f"{r['kid'] * 1e3:.1f}", f"{100 * r['class accuracy']:.1f} %",  # noqa: E731
                       f"{total(r):.3f}")
    rows = []
    shipped = shipped_row_without_prior([r for r in main["rows"] if backbone_of(r) == bound])
    if shipped:
        rows.append(("the shipped weights alone, their own init map (main table)", "0-10 (the last 4 minimum-norm)", "-", *cells(shipped)))
    for r in sorted(d["rows"], key=lambda r: r["handoff_steps"]):
        k = r["handoff_steps"]
        rows.append((r["label"], f"0-{k}", f"σ = {steps[k - 1][2]:.1f}: the {r['steps']}-step schedule below it, "
                     f"CFG w={r['backbone_finish_cfg']}", *cells(r)))
    for r in sorted((r for r in main["rows"] if r["kind"] == "ancestral" and backbone_of(r) == bound),
                    key=lambda r: r["steps"]):
        rows.append((f"the backbone's ancestral sampler alone, {r['steps']} steps (main table)", "-",
                     f"σ = 80: all {r['steps']} steps, CFG w={r['cfg_scale']}", *cells(r)))
    n = d["rows"][0]["num_images"]
    return (md(["sampler", "token maps drawn by the generator", "backbone's ancestral sampler from",
                f"FID-{n // 1000}k ↓", "KID ×10³ ↓", "class accuracy ↑ (proxy)", "s/image"], rows) +
            f"\n\n{n:,} class-balanced samples per row (image i seeded by (0, i), the same per-image seeds in every "
            f"row), scored at 32 px, standard FID Inception against {d['rows'][0]['fid_reference']}; the shipped "
            f"generator (gen-mini, CFG w = {d['rows'][0]['cfg_scale']}, τ = {d['rows'][0]['temperature']}) with "
            f"`assets/{bound}` in every row. Seconds per image in fp32 on one thread per process, with another "
            "job on the 2 cores (they vary with its load). "
            + "; ".join(f"`{c}`" for c in d.get("commands", [])))


def t_rfid():
    d = load("rfid")
    if not d:
        return None
    rows = [(r["method"], f"{r['rfid']:.2f}", f"{r['psnr']:.2f}", r.get("bits_per_image", "-"),
             f"{r['seconds_per_image']:.3f}") for r in d["rows"]]
    n = d["rows"][0]["num_images"]
    return (md(["reconstruction", f"rFID-{n // 1000}k ↓", "PSNR (dB)", "bits/image", "s/image"], rows) +
            f"\n\nThe first {n:,} CIFAR-10 `val` images (class-interleaved: class-balanced) against their own originals, "
            f"standard FID Inception; rFID's floor is 0. `{d['command']}`")


def t_reliability():
    d = load("reliability")
    if not d:
        return None
    esc = lambda t: t.replace("|", "\\|")  # noqa: E731
    rows = [(f"`{r['command']}`", f"`{esc(r['arguments'])}`", r["exit_code"], esc(r["message"].split(": error: ", 1)[-1]))
            for r in d["rows"]]
    return (md(["command", "input", "exit", "message (one line on stderr)"], rows) +
            f"\n\nEach case also leaves its folder byte-for-byte as it was (`tests/test_cli_errors.py`). `{d['command']}`")


def t_codebook_versions():
    d = load("codebook_versions")
    if not d:
        return None
    rows = []
    for r in d["rows"]:
        rows.append((r["setting"], f"`{r['codebook']}`", f"{r['psnr']:.2f}", f"{r['psnr_std_over_images']:.2f}",
                     f"{r['ssim']:.4f}"))
    sp = d["speed_s_per_codebook"]
    return (md(["setting", "codebook", "PSNR (dB)", "PSNR std over images", "SSIM"], rows) +
            f"\n\n{d['rows'][0]['num_images']} CIFAR-10 `val` images, shipped VP-ε backbone, fp32. Generation of "
            f"{d['speed_what']}: v1 {sp['gddcm-codebook-v1'] * 1e3:.0f} ms, v2 {sp['gddcm-codebook-v2'] * 1e3:.0f} ms "
            f"({d['threads']} threads). `{d['command']}`")


def t_backbone_pilots():
    d = load("backbone_pilots")
    if not d:
        return None
    rows = [(f"`{r['pilot']}`", r["family"], r["model"], f"{r['parameters'] / 1e6:.2f}M", r["precision"],
             f"{r['images_seen']:,}", f"{r['images_per_s']:.0f}", f"**{r['fid']:.1f}**", f"{r['class_accuracy']:.3f}",
             f"{r['heldout_loss']:.4f}", r["sampler"], f"{r['sample_s_per_image']:.3f}")
            for r in sorted(d["pilots"], key=lambda r: r["fid"])]
    n, ref, minutes = d["pilots"][0]["num_samples"], d["pilots"][0]["fid_reference"], d["pilots"][0]["minutes"]
    return (md(["pilot", "family", "network", "params", "precision", "images seen", "train img/s (wall)",
                f"FID-{n // 1000}k ↓", "class acc.", "held-out loss (own family)", "own sampler", "sample s/img"], rows) +
            f"\n\nEach pilot trained from scratch for {minutes:g} CPU-minutes (one thread, `--stop-after-cpu-minutes`; "
            f"encoding the data once excluded), EMA weights, against {ref}, standard FID Inception, "
            f"{n:,} class-balanced samples: FID at this count ranks, it is not a CIFAR-10 FID-50k (real images "
            "score 33.6 here). Held-out loss is each family's own training loss on 1,000 `val` images and "
            f"compares pilots of one family only. `{d['commands'][-1]}`")


def t_backbone_scaling():
    d = load("backbone_scaling")
    if not d:
        return None
    rows = [(f"{r['images_seen']:,}", r["optimizer_steps"], r["sampler"], f"**{r['fid']:.1f}**",
             f"{r['class_accuracy']:.3f}") for r in d["rows"]]
    n = d["rows"][0]["num_samples"]
    return (md(["images seen", "optimizer steps", "own sampler", f"FID-{n // 1000}k ↓ (vs val)", "class acc."], rows) +
            f"\n\nRun `{d['run']}` ({d['family']}, {d['model']}); every row is an EMA export of one checkpoint, "
            "scored when it was written (the run keeps only its newest checkpoints; `--checkpoint DIR` scores one): "
            f"`python benchmarks/bench_backbone_scaling.py --run {d['run']} --out benchmarks/results/backbone_scaling.json`")


def t_backbone_decay():
    """EMA exports of the long run against learning-rate decay phases fine-tuned from them, grouped by
    start: each checkpoint's EMA scored like the scaling curve (FID-1k against `val`, the same sampler)."""
    d, base = load("backbone_decay"), load("backbone_scaling")
    if not d or not base:
        return None
    import math

    def lr_of_last_update(step, tc):                 # rdpm_gddcm.training.cosine_lr, floor 10 % (no torch import here)
        s = step - 1
        if s < tc["warmup_steps"]:
            return tc["lr"] * (s + 1) / tc["warmup_steps"]
        prog = min(1.0, (s - tc["warmup_steps"]) / (tc["max_steps"] - tc["warmup_steps"]))
        return tc["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))
    tc = d["train_config"]                           # every decay run here used the same settings
    shipped = json.loads((ROOT / "assets" / "cifar10-taef2-edm-long" / "backbone.json").read_text())["images_seen"]
    rows = []
    for start in sorted({r["images_seen_total"] - r["images_seen"] for r in d["rows"]}):
        s0 = next((r for r in base["rows"] if r["images_seen"] == start), None)
        if s0 is None:
            return None
        rows.append((f"{start:,}", "0" + (" (the shipped backbone)" if start == shipped else " (the long run)"),
                     f"{tc['lr']:.1e}", s0["sampler"], f"{s0['fid']:.1f}", f"{s0['class_accuracy']:.3f}"))
        for r in (r for r in d["rows"] if r["images_seen_total"] - r["images_seen"] == start):
            rows.append((f"{r['images_seen_total']:,}", f"{r['optimizer_steps']:,}",
                         f"{lr_of_last_update(r['optimizer_steps'], tc):.1e}",
                         r["sampler"], f"**{r['fid']:.1f}**", f"{r['class_accuracy']:.3f}"))
    n = d["rows"][0]["num_samples"]
    return (md(["images seen (total)", "decay-phase steps", "learning rate of the last update", "own sampler",
                f"FID-{n // 1000}k ↓ (vs val)", "class acc. (proxy)"], rows) +
            "\n\nEach decay phase: `--init-from` an EMA export of the long run (first row of its group), fresh "
            f"AdamW, {tc['warmup_steps']} warm-up steps to {tc['lr']:g}, then cosine to a tenth of it at step "
            f"{tc['max_steps']:,} (batch {tc['global_batch_size']}, EMA {tc['ema_decay']}, the long run's data and "
            "flips); every row is one checkpoint's EMA, 1,000 class-balanced samples against the 5,000 `val` images, "
            "standard FID Inception, 32 px. " + "; ".join(f"`{c}`" for c in d["commands"]))


def t_ect_schedules():
    d = load("ect_schedules")
    if not d:
        return None
    rows = [(f"`{r['run']}`", f"2^-{r['ect_halvings']:g}", r["optimizer_steps"], r["sampler"], f"**{r['fid']:.1f}**",
             f"{100 * r['class_accuracy']:.1f} %") for r in d["rows"]]
    n = d["rows"][0]["num_samples"]
    return (md(["run", "Δt/t at the end (×start)", "steps", "sampler", f"FID-{n // 1000}k ↓ (vs val)", "class acc. (proxy)"],
               rows) +
            "\n\nBoth runs: ECT from the same EDM weights (the long run at 543,232 images), 3,000 steps of batch 64, "
            "the same seed and learning rate; only `--ect-halvings` differs. "
            + "; ".join(f"`{c}`" for c in d["commands"]))


TABLES = {"ect_schedules": t_ect_schedules, "backbone_fid": t_backbone_fid, "backbone_pilots": t_backbone_pilots, "backbone_scaling": t_backbone_scaling, "backbone_decay": t_backbone_decay, "rfid": t_rfid, "generator_fid": t_generator_fid, "generator_fid_latent": t_generator_fid_latent, "generator_tuning": t_generator_tuning, "generator_knobs": t_generator_knobs, "generator_diagnostics": t_generator_diagnostics, "generator_handoff": t_generator_handoff, "generator_midmaps": t_generator_midmaps, "generator_isotropic": t_generator_isotropic, "generator_sizes": t_generator_sizes, "generator_history": t_generator_history, "generator_two_pass": t_generator_two_pass, "generator_masked": t_generator_masked, "token_coherence": t_token_coherence, "generator_init_prior": t_generator_init_prior, "generator_half_shown": t_generator_half_shown, "generator_token_plan": t_generator_token_plan, "generator_token_plan_tuning": t_generator_token_plan_tuning, "generator_backbone_guidance": t_generator_backbone_guidance, "headline": t_headline, "fid_resolution": t_fid_resolution, "reliability": t_reliability, "codebook_versions": t_codebook_versions, "portability": t_portability, "fid_reference": t_fid_reference, "generator": t_generator, "generator_ablations": t_generator_ablations, "generator_heads": t_generator_heads,
          "fidelity_tokens10": lambda: t_fidelity("fidelity_tokens10"),
          "fidelity_table1": lambda: t_fidelity("fidelity_table1"), "fidelity_grid2d": lambda: t_fidelity("fidelity_grid2d"),
          "fidelity_ksweep": lambda: t_fidelity("fidelity_ksweep"), "fidelity_psweep": lambda: t_fidelity("fidelity_psweep"),
          "jpeg": t_jpeg,
          "fidelity_tune": lambda: t_fidelity("fidelity_tune"), "fidelity_tune_flow": lambda: t_fidelity("fidelity_tune_flow"), "overhead": t_overhead, "backbone_speed": t_speed,
          "autoencoder": t_autoencoder, "classifier": t_classifier, "backbones": t_backbones}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = text
    for name, fn in TABLES.items():
        body = fn()
        if body is None:
            continue
        pat = re.compile(rf"(<!-- table:{name} -->\n)(.*?)(<!-- /table -->)", re.S)
        new = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(3), new)
    if a.check:
        sys.exit(0 if new == text else 1)
    readme.write_text(new)
    print("README tables regenerated" if new != text else "README tables already up to date")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import plots  # noqa: E402  (lazily: matplotlib is an optional extra; plots.make_all says when it skips)
    plots.make_all()


if __name__ == "__main__":
    main()
