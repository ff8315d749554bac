"""Result plots (PNG) from the JSON files in benchmarks/results/ (matplotlib: the ``plots`` extra).

    python benchmarks/plots.py     # or: python benchmarks/report.py (tables + plots)

One function per plot; each reads its JSON from ``results_dir``, writes ``plots_dir/NAME.png``
and returns its path, or returns None (skips) when its JSON is missing:

- :func:`rate_distortion`     PSNR vs bpp: gDDCM 1D / 2D token maps, DDCM, plain JPEG
- :func:`k_scaling`           PSNR vs codebook size K (fidelity_ksweep)
- :func:`grid_scaling`        PSNR vs blocks per token map (fidelity_grid2d)
- :func:`p_sweep`             PSNR vs trajectory p, fixed point p=0 for reference (fidelity_psweep)
- :func:`generator_vs_steps`  CIFAR-feature FD (proxy, not FID) vs backbone calls (generator)
- :func:`fid_vs_steps`        FID-1k vs sampling steps: the latent generator, its backbone's own samplers
                              (generator_fid_latent*, the backbone's card), the bounds and the real floor

Without matplotlib, :func:`make_all` prints one line saying the plots were skipped and why.
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# colour per backbone (by label prefix), marker per tokenisation
COLOURS = {"VP": "tab:blue", "flow": "tab:orange", "linear": "tab:gray", "EDM": "tab:green"}
FD_LABEL = "CIFAR-feature FD (proxy, not FID)"


def _pyplot():
    """matplotlib.pyplot on the Agg backend, or raise ImportError."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _load(results_dir, name):
    p = Path(results_dir) / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _out(plots_dir, results_dir, name) -> Path:
    d = Path(plots_dir) if plots_dir is not None else Path(results_dir) / "plots"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.png"


def _save(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def _colour(backbone_label: str) -> str:
    for k, c in COLOURS.items():
        if backbone_label.startswith(k):
            return c
    return "tab:purple"


def _grid_blocks(row) -> int:
    """Blocks per token map of a fidelity row (1 for 1D)."""
    m = re.search(r"grid (\d+)x(\d+)", row.get("plan_label", ""))
    if m:
        return int(m.group(1)) * int(m.group(2))
    args = row.get("command_args", [])
    if "--grid" in args:
        a, b = args[args.index("--grid") + 1].split("x")
        return int(a) * int(b)
    return 1


def _arg(row, flag, default=None):
    args = row.get("command_args", [])
    return args[args.index(flag) + 1] if flag in args else default


def _plain_log_ticks(ax, ticks):
    """Major ticks at ``ticks`` (those inside the data range) written as plain numbers."""
    lo, hi = ax.get_xlim()
    ticks = [t for t in ticks if lo <= t <= hi]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlim(lo, hi)


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


# ------------------------------------------------------------------------------------------------

def rate_distortion(results_dir=RESULTS, plots_dir=None):
    """PSNR vs bpp (log x): gDDCM 1D rows (fidelity_table1/ksweep/psweep and the 1x1 rows of
    grid2d), 2D rows (fidelity_grid2d/tokens10), DDCM rows, and the plain JPEG curve (jpeg.json)."""
    names = ("fidelity_table1", "fidelity_ksweep", "fidelity_psweep", "fidelity_grid2d", "fidelity_tokens10")
    data = {n: _load(results_dir, n) for n in names}
    jpeg = _load(results_dir, "jpeg")
    if not any(data.values()) and jpeg is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5))
    seen_backbones, seen_kinds = {}, {}
    kinds = {"1D": dict(marker="o", s=36), "2D": dict(marker="s", s=40), "DDCM": dict(marker="^", s=48)}
    points, counts = set(), set()
    for n, d in data.items():
        for r in (d or {}).get("rows", []):
            if not _finite(r.get("psnr")):
                continue
            kind = "DDCM" if r.get("plan", {}).get("kind") == "ddcm" else ("2D" if _grid_blocks(r) > 1 else "1D")
            key = (r["backbone_label"], kind, round(r["bpp"], 4), round(r["psnr"], 2))
            if key in points:       # the same configuration measured by two suites
                continue
            points.add(key)
            counts.add(r.get("num_images"))
            c = _colour(r["backbone_label"])
            ax.scatter(r["bpp"], r["psnr"], color=c, edgecolors="black", linewidths=0.4, zorder=3, **kinds[kind])
            seen_backbones[r["backbone_label"]] = c
            seen_kinds[kind] = kinds[kind]
    handles = []
    if jpeg:
        rows = [r for r in jpeg["rows"] if r.get("subsampling", "4:2:0") == "4:2:0" and _finite(r.get("psnr"))]
        rows.sort(key=lambda r: r["quality"])
        if rows:
            h1, = ax.plot([r["bpp"] for r in rows], [r["psnr"] for r in rows], "-", color="black", lw=1.2,
                          marker=".", ms=4, label="JPEG (Pillow, 4:2:0), whole file")
            h2, = ax.plot([r["scan_bpp"] for r in rows], [r["psnr"] for r in rows], "--", color="black", lw=1,
                          alpha=0.6, label="JPEG, entropy-coded scan only (tables shared)")
            handles += [h1, h2]
            for r in rows:
                if r["quality"] in (5, 50, 95):
                    ax.annotate(f"q={r['quality']}", (r["bpp"], r["psnr"]), textcoords="offset points",
                                xytext=(4, -10), fontsize=7)
            if any(r["quality"] > 50 for r in rows):
                hi = [r for r in rows if r["quality"] > 50]
                ax.annotate("JPEG above q=50 re-quantises the q=75 JPEG\nsource images: optimistic for JPEG",
                            (hi[len(hi) // 2]["bpp"], hi[len(hi) // 2]["psnr"]), textcoords="offset points",
                            xytext=(-175, 14), fontsize=7, color="dimgray",
                            arrowprops=dict(arrowstyle="-", color="gray", lw=0.6))
    from matplotlib.lines import Line2D
    handles += [Line2D([], [], ls="", marker="o", color=c, markeredgecolor="black", label=b)
                for b, c in seen_backbones.items()]
    handles += [Line2D([], [], ls="", marker=k["marker"], color="white", markeredgecolor="black",
                       label={"1D": "gDDCM 1D (one token per step)", "2D": "gDDCM 2D (grid of tokens per step)",
                              "DDCM": "DDCM"}[name]) for name, k in seen_kinds.items()]
    ax.set_xscale("log")
    _plain_log_ticks(ax, [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100])
    ax.set_xlabel("rate (bits per pixel, bpp; log scale)")
    ax.set_ylabel("PSNR (dB)")
    if jpeg:
        counts.add(jpeg.get("num_images"))
    counts = sorted(c for c in counts if c)
    n = (str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}") + " " if counts else ""
    ax.set_title(f"Rate-distortion on {n}CIFAR-10 val images (32x32)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, _out(plots_dir, results_dir, "rate_distortion"))


def _psnr_log2_plot(by: dict, marker: str, xlabel: str, title: str, name: str, results_dir, plots_dir,
                    annotate=None, margin: float = 0.0):
    """One PSNR line per backbone over a log2 x axis with a tick at every measured x. ``by``: backbone
    label -> [(x, psnr, extra)]; ``annotate(ax, first_line_points)`` labels the first line's points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for b, pts in by.items():
        pts.sort()
        ax.plot([x for x, _, _ in pts], [p for _, p, _ in pts], marker, color=_colour(b), label=b)
    if annotate:
        annotate(ax, sorted(next(iter(by.values()))))
    ax.set_xscale("log", base=2)
    xs = sorted({x for pts in by.values() for x, _, _ in pts})
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    if margin:
        ax.margins(x=margin)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, _out(plots_dir, results_dir, name))


def k_scaling(results_dir=RESULTS, plots_dir=None):
    """PSNR vs codebook size K (log2 x), one line per backbone (fidelity_ksweep)."""
    d = _load(results_dir, "fidelity_ksweep")
    if not d:
        return None
    by = {}
    for r in d["rows"]:
        by.setdefault(r["backbone_label"], []).append((int(_arg(r, "--codebook-size")), r["psnr"], r["plan_label"]))
    plan = re.sub(r"\s*K=\d+", "", d["rows"][0]["plan_label"])
    return _psnr_log2_plot(by, "-o", "codebook size K (log2 scale)", f"Codebook size: 1D, {plan}", "k_scaling",
                           results_dir, plots_dir)


def grid_scaling(results_dir=RESULTS, plots_dir=None):
    """PSNR vs blocks per token map (1x1, 4x4, 8x8 grids; fidelity_grid2d), with bpp annotated."""
    d = _load(results_dir, "fidelity_grid2d")
    if not d:
        return None
    by = {}
    for r in d["rows"]:
        by.setdefault(r["backbone_label"], []).append((_grid_blocks(r), r["psnr"], r["bpp"]))

    def bpp_labels(ax, pts):
        for g, p, bpp in pts:
            ax.annotate(f"{bpp:.3g} bpp", (g, p), textcoords="offset points", xytext=(5, -12), fontsize=7)
    n, k = _arg(d["rows"][0], "--num-steps", "?"), _arg(d["rows"][0], "--codebook-size", "?")
    return _psnr_log2_plot(by, "-s", "blocks per token map (tokens per step; log2 scale)",
                           f"Token-map grid: N={n}, K={k}, trajectory p=0.5", "grid_scaling", results_dir, plots_dir,
                           annotate=bpp_labels, margin=0.15)


def p_sweep(results_dir=RESULTS, plots_dir=None):
    """PSNR vs trajectory p, the fixed-point plan (p=0) as a separate marker (fidelity_psweep)."""
    d = _load(results_dir, "fidelity_psweep")
    if not d:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    by = {}
    for r in d["rows"]:
        by.setdefault(r["backbone_label"], []).append(r)
    for b, rows in by.items():
        c = _colour(b)
        traj = sorted((r.get("plan", {})["p"], r["psnr"]) for r in rows if r.get("plan", {}).get("kind") == "trajectory")
        if traj:
            ax.plot([p for p, _ in traj], [v for _, v in traj], "-o", color=c, label=f"{b}, trajectory plan")
        for r in rows:
            if r.get("plan", {}).get("kind") == "fixed-point":
                ax.scatter([0.0], [r["psnr"]], marker="*", s=140, color=c, edgecolors="black", linewidths=0.5,
                           zorder=3, label=f"{b}, fixed-point plan (p=0)")
    ax.set_xlabel("backtrack parameter p (trajectory plan; p=0: fixed-point plan)")
    ax.set_ylabel("PSNR (dB)")
    r0 = d["rows"][0]
    ax.set_title(f"p sweep: 1D, N={_arg(r0, '--num-steps', '?')}, K={_arg(r0, '--codebook-size', '?')}, "
                 f"{r0['num_images']} val images")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, _out(plots_dir, results_dir, "p_sweep"))


def generator_vs_steps(results_dir=RESULTS, plots_dir=None):
    """CIFAR-feature FD (proxy, not FID) and class accuracy vs backbone calls per image: the
    backbone's ODE sampler as a line, the generator / random-token rows (10 steps) as points, real
    images as a horizontal floor (generator.json)."""
    d = _load(results_dir, "generator")
    if not d:
        return None
    extra = _load(results_dir, "generator_ode100")           # the 100-step ODE row, run separately
    if extra:
        d = {**d, "rows": d["rows"] + [r for r in extra["rows"] if r["label"] not in {x["label"] for x in d["rows"]}]}
    plt = _pyplot()
    metrics = [("CIFAR-feature FD", FD_LABEL), ("class accuracy", "class accuracy (proxy classifier)")]
    metrics = [(k, lab) for k, lab in metrics if any(_finite(r.get(k)) for r in d["rows"])]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.6), squeeze=False)
    style = {"generator": dict(marker="*", s=160, color="tab:red"), "random": dict(marker="X", s=80, color="tab:gray")}
    for ax, (key, ylabel) in zip(axes[0], metrics):
        ode = sorted((r["steps"], r[key]) for r in d["rows"] if r.get("kind") == "ode" and _finite(r.get(key)))
        xs = [s for s, _ in ode]
        if ode:
            ax.plot(xs, [v for _, v in ode], "-o", color="tab:blue", label="backbone ODE sampler")
        for r in d["rows"]:
            if not _finite(r.get(key)):
                continue
            if r.get("kind") in style:
                st = dict(style[r["kind"]])
                if r.get("kind") == "generator" and r.get("label") != "RDPM generator (ours)":
                    st.update(s=90, color="white")                 # other generators: hollow stars
                ax.scatter([r.get("steps") or 10], [r[key]], edgecolors="black", linewidths=0.5, zorder=3,
                           label=r.get("label", r["kind"]), **st)
                xs.append(r.get("steps") or 10)
            elif r.get("kind") == "real":
                ax.axhline(r[key], color="black", ls="--", lw=1, label=r.get("label", "real images"))
        if xs:
            if max(xs) / max(min(xs), 1) >= 4:
                ax.set_xscale("log")
                ax.minorticks_off()
            ax.set_xticks(sorted(set(xs)))
            ax.set_xticklabels([f"{x:g}" for x in sorted(set(xs))])
        ax.set_xlabel("backbone calls per image (sampling steps)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()          # one legend for both panels, below
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    n = next((r.get("num_images") for r in d["rows"] if r.get("num_images")), None)
    fig.suptitle("Class-conditional CIFAR-10 generation" + (f" ({n} images per row)" if n else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))                             # room for the legend
    return _save(fig, _out(plots_dir, results_dir, "generator_vs_steps"), tight=False)


def fid_vs_steps(results_dir=RESULTS, plots_dir=None, card=ROOT / "assets" / "cifar10-taef2-edm-long" / "card.json"):
    """FID against sampling steps (generator_fid_latent.json + _b.json): the backbone's own ODE (its
    card's FID rows and any ``ode`` rows) and ancestral samplers as lines; the 10-step chain rows
    (generator, random tokens, the decoded training tokens) as points; the autoencoder-alone row and
    the real-data floor (fid_reference.json) as horizontal lines."""
    parts = [d for d in (_load(results_dir, "generator_fid_latent"), _load(results_dir, "generator_fid_latent_b")) if d]
    rows = [r for d in parts for r in d["rows"] if _finite(r.get("fid"))]
    if not rows:
        return None
    lines = {"ode": [], "ancestral": []}
    for r in rows:
        if r["kind"] in lines:
            lines[r["kind"]].append((r["steps"], r["fid"]))
    if Path(card).exists():
        for r in json.loads(Path(card).read_text()).get("fid") or []:
            if r.get("steps") not in {s for s, _ in lines["ode"]}:
                lines["ode"].append((r["steps"], r["fid"]))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    xs = [10]
    for kind, colour, label in (("ode", "tab:blue", "backbone's own ODE (Heun)"),
                                ("ancestral", "tab:purple", "backbone's ancestral sampler")):
        pts = sorted(lines[kind])
        if pts:
            ax.plot([s for s, _ in pts], [v for _, v in pts], "-o", color=colour, label=label)
            xs += [s for s, _ in pts]
    style = {"generator": dict(marker="*", s=180, color="tab:red"), "random": dict(marker="X", s=80, color="tab:gray"),
             "tokens": dict(marker="D", s=60, color="tab:green")}
    for r in rows:
        if r["kind"] in style:
            ax.scatter([10], [r["fid"]], edgecolors="black", linewidths=0.5, zorder=3, label=r["label"], **style[r["kind"]])
        elif r["kind"] == "autoencoder":
            ax.axhline(r["fid"], color="tab:orange", ls=":", lw=1.2, label=r["label"])
    ref = _load(results_dir, "fid_reference")
    n = rows[0].get("num_images", 1000)
    floor = [x for x in (ref or {}).get("rows", []) if x["pair"].startswith(f"train {n:,} vs val")]
    if floor:
        ax.axhline(floor[0]["fid"], color="black", ls="--", lw=1, label="real train images (the floor)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sorted(set(xs)))
    ax.set_xticklabels([f"{x:g}" for x in sorted(set(xs))])
    ax.set_xlabel("sampling steps (the chain rows: 10 token maps + 1 final ODE step)")
    ax.set_ylabel(f"FID-{n // 1000 if n >= 1000 else n}{'k' if n >= 1000 else ''} vs CIFAR-10 val (lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"Class-conditional CIFAR-10, latent EDM stack ({n} samples per point)", fontsize=10)
    return _save(fig, _out(plots_dir, results_dir, "fid_vs_steps"))


PLOTS = (rate_distortion, k_scaling, grid_scaling, p_sweep, generator_vs_steps, fid_vs_steps)


def make_all(results_dir=RESULTS, plots_dir=None) -> list:
    """Write every plot whose JSON exists; returns the written paths. Without matplotlib, prints one
    line and returns []."""
    try:
        _pyplot()
    except ImportError as e:
        print(f"plots skipped: matplotlib is not importable ({e}); install the 'plots' extra")
        return []
    written = []
    for fn in PLOTS:
        p = fn(results_dir, plots_dir)
        if p is not None:
            written.append(p)
    names = ", ".join(Path(p).name for p in written) or "none (no result JSON)"
    print(f"plots written: {names}")
    return written


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--plots-dir", default=None, help="default: RESULTS_DIR/plots")
    a = p.parse_args(argv)
    make_all(Path(a.results_dir), Path(a.plots_dir) if a.plots_dir else None)


if __name__ == "__main__":
    main(sys.argv[1:])
