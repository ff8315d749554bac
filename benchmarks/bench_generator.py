"""Class-conditional CIFAR-10 generation at 10 steps: the RDPM generator against its baselines.

Rows (suite ``main``), all class-balanced, image i seeded by (--global-seed, i):
  (a) the RDPM generator: the chain with the generator as chooser (CFG + Gumbel), 10 steps;
  (b) the same backbone's own deterministic ODE sampler with CFG, at 10 and at 100 steps, and its
      ancestral sampler (``chain.ancestral_sample``) at 100 and 1,000 steps (rows 5, 6);
  (c) random tokens: the same chain and plan with uniformly random indices (DDCM-style generation);
  and real CIFAR-10 `train` images as the floor of the metric at this sample size.
Suite ``diagnostics`` (where the generator loses FID): the generator's chain with the stored tokens of
`train` images replacing its choices in some token rows (``true_rows``): of class-matched images, or of
other images (``true_from``); score these against `val` (the tokens are `train`'s). Its hand-off rows
(``kind="handoff"``) let the generator draw the first k chain steps only and the backbone's ancestral
sampler (its ``steps``-step schedule from the first time below the chain's, CFG ``backbone_finish_cfg``) finish
from that state: how far the generator's early maps, and the backbone's late denoising, carry.
Suite ``ablations`` (also the tuning of a checkpoint's sampling defaults): CFG scale sweep, temperature
sweep, optional top-k / top-p, minimum-norm and backbone-guidance sweeps, the linear CFG schedule, and
other heads (``--head-variant LABEL=RUN_DIR``, e.g. an untied head trained with the same command). A knob a row does not set is the
checkpoint's ``rdpm-sample`` default. Every row reports the labelled CPU proxies "CIFAR-feature FD"
(against all 5,000 `val` images) and "class accuracy" (not FID), seconds per image split into backbone,
transformer and autoencoder, and with ``--fid-reference`` FID and KID (standard FID Inception).

    python benchmarks/bench_generator.py --suite main --num-images 1000 --out benchmarks/results/generator.json

Rows already in the output JSON are kept (re-running resumes).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm.generator import count_params, resolve_map_passes  # noqa: E402
from rdpm_gddcm.image_sources import ArrayImages, Source, load_source  # noqa: E402
from rdpm_gddcm.init_prior import PRIOR_SETTINGS  # noqa: E402
from rdpm_gddcm.proxy_metrics import PROXY_ACC, PROXY_FD, proxy_metrics  # noqa: E402
from rdpm_gddcm.sample import Sampler, image_generator, labels_for, resolve_recorded_path  # noqa: E402


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def generator_rows(a) -> list[dict]:
    g = [dict(label="RDPM generator (ours)", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
              temperature=a.temperature)]
    if a.suite == "main":
        return g + [
            dict(label="backbone ODE, 10 steps", kind="ode", steps=10, cfg_scale=a.ode_cfg_scale),
            dict(label="backbone ODE, 100 steps", kind="ode", steps=100, cfg_scale=a.ode_cfg_scale),
            dict(label="random tokens (DDCM-style), same plan", kind="random"),
            dict(label="real CIFAR-10 train images", kind="real"),
            dict(label="backbone ancestral, 100 steps", kind="ancestral", steps=100, cfg_scale=a.ode_cfg_scale),
            dict(label="backbone ancestral, 1000 steps", kind="ancestral", steps=1000, cfg_scale=a.ode_cfg_scale),
            # --tokens decoded: what a generator that reproduced the training tokens exactly would score
            dict(label="the tokens of train images, decoded (a perfect generator)", kind="tokens"),
            # the same images through the autoencoder alone: the bound of every sampler in its latent space
            dict(label="train images through the autoencoder alone", kind="autoencoder"),
            # the floor's images at the latent stack's 64 px (PIL bicubic, as the tokenizer's data loader):
            # what scoring at a resolution other than the reference's does to real images
            dict(label="real CIFAR-10 train images, upsampled to 64 px", kind="real", size=64),
        ]
    if a.suite == "diagnostics":
        late, g0 = list(range(4, 11)), dict(kind="mixed", ckpt=a.generator)
        return g + [
            dict(label="true tokens in every row (a perfect generator)", true_rows=list(range(11)), **g0),
            dict(label="true tokens in rows 0-1, the generator after", true_rows=[0, 1], **g0),
            dict(label="the generator in rows 0-3, true tokens after", true_rows=late, **g0),
            dict(label="the generator in rows 0-3, other images' true tokens after", true_rows=late,
                 true_from="other images", **g0),
            # which property of the other images' late tokens helps: the rows, and their coherence
            dict(label="other images' true tokens in rows 4-6 only", true_rows=[4, 5, 6], true_from="other images", **g0),
            dict(label="other images' true tokens in rows 7-10 only", true_rows=[7, 8, 9, 10], true_from="other images",
                 **g0),
            dict(label="the generator in rows 0-3, each later map from a different image", true_rows=late,
                 true_from="other images, one per map", **g0),
            dict(label="the generator in rows 0-3, each later token from a different image", true_rows=late,
                 true_from="other images, one per token", **g0),
            # the converse of row 3: how well the generator continues a real image's first maps
            dict(label="true tokens in rows 0-3, the generator after", true_rows=[0, 1, 2, 3], **g0),
            # hand-off rows (10-11, 13-14): the generator's first k chain steps, then the backbone's ancestral sampler
            dict(label="the generator in rows 0-3, then the backbone's ancestral sampler", kind="handoff",
                 ckpt=a.generator, handoff_steps=3, steps=100, backbone_finish_cfg=a.ode_cfg_scale, min_norm_maps=0),
            dict(label="the generator in rows 0-6, then the backbone's ancestral sampler", kind="handoff",
                 ckpt=a.generator, handoff_steps=6, steps=100, backbone_finish_cfg=a.ode_cfg_scale, min_norm_maps=0),
            dict(label="backbone ancestral, 100 steps", kind="ancestral", steps=100, cfg_scale=a.ode_cfg_scale),
            # rows 13-14: the hand-off between them, one map at a time
            *(dict(label=f"the generator in rows 0-{k}, then the backbone's ancestral sampler", kind="handoff",
                   ckpt=a.generator, handoff_steps=k, steps=100, backbone_finish_cfg=a.ode_cfg_scale, min_norm_maps=0)
              for k in (4, 5)),
            # rows 15-16: the middle maps alone (σ 16 to 1.8 on the shipped plan) from one real image, the generator's
            # choices (and its minimum-norm maps) elsewhere: what coherent tokens there are worth at its setting
            dict(label="one same-class train image's tokens in rows 4-6 only", true_rows=[4, 5, 6], **g0),
            dict(label="one other train image's tokens (any class) in rows 4-6 only", true_rows=[4, 5, 6],
                 true_from="other images", **g0),
        ]
    rows = []
    for w in a.cfg_sweep:
        rows.append(dict(label=f"CFG w={w}", kind="generator", ckpt=a.generator, cfg_scale=w, temperature=a.temperature))
    for tau in a.temperature_sweep:
        rows.append(dict(label=f"temperature τ={tau}", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                         temperature=tau))
    for k in a.top_k_sweep:
        rows.append(dict(label=f"top-k {k}", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                         temperature=a.temperature, top_k=k))
    for q in a.top_p_sweep:
        rows.append(dict(label=f"top-p {q}", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                         temperature=a.temperature, top_p=q))
    for m in a.min_norm_maps_sweep:
        rows.append(dict(label=f"minimum-norm last {m} maps", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                         temperature=a.temperature, min_norm_maps=m))
    for P in a.map_passes_sweep:
        rows.append(dict(label=f"{P} passes per map", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                         temperature=a.temperature, map_passes=P))
    for wb in a.backbone_cfg_sweep:
        rows.append(dict(label=f"backbone CFG w_b={wb}", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                         temperature=a.temperature, backbone_cfg_scale=wb))
    for beta in a.norm_bias_sweep:
        rows.append(dict(label=f"norm bias β={beta}", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                         temperature=a.temperature, norm_bias=beta))
    for w in a.init_prior_guidance_sweep:
        for sc in a.init_prior_scale_sweep:
            rows.append(dict(label=f"Gaussian init prior w={w}, s={sc}", kind="generator", ckpt=a.generator,
                             cfg_scale=a.cfg_scale, temperature=a.temperature, init_prior="gaussian",
                             init_prior_guidance=w, init_prior_scale=sc))
    for sched in a.cfg_schedule_sweep:
        rows.append(dict(label=f"CFG {sched} schedule" + (f", w={a.cfg_scale}" if a.cfg_scale is not None else ""),
                         kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                         temperature=a.temperature, cfg_schedule=sched))
    rows.append(dict(label="CFG linear schedule", kind="generator", ckpt=a.generator, cfg_scale=a.cfg_scale,
                     temperature=a.temperature, cfg_schedule="linear"))
    for variant in a.head_variant:
        label, _, ckpt = variant.partition("=")
        if not ckpt:
            raise SystemExit(f"--head-variant {variant!r}: write LABEL=RUN_DIR, e.g. 'untied head=runs/cifar10-generator-untied'")
        rows.append(dict(label=label, kind="generator", ckpt=ckpt, cfg_scale=a.cfg_scale, temperature=a.temperature))
    return rows


def baseline_tokenizer(a, cache: dict):
    """The generator's tokenizer (backbone, plan, codebooks), rebuilt from the header of --tokens (the
    generator's training tokens) so the baselines can run before or without a trained generator."""
    if "tok" not in cache:
        from rdpm_gddcm.tokenizer import Tokenizer
        f = Path(a.tokens) / "tokenizer_config.json"
        if f.exists():
            h = json.loads(f.read_text())["header"]   # = the manifest's
        else:                                          # the generator records its tokens' header
            h = json.loads((Path(a.generator) / "generator.json").read_text())["tokens_header"]
        cache["tok"] = Tokenizer.from_header(h, a.backbone, None, "cpu")
        cache["tok"].backbone.set_precision(a.mixed_precision, "cpu")     # sampling replays no stored tokens
    return cache["tok"]


def relative_to_root(path: str) -> str:
    """``path`` relative to the repository when it lies inside it (how rows name their backbone)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def generator_sampler(row: dict, a, cache: dict) -> Sampler:
    """The row's generator (loaded once); knobs the row does not set become the checkpoint's recorded
    rdpm-sample defaults, written into the row."""
    if row["ckpt"] not in cache:
        cache[row["ckpt"]] = Sampler(row["ckpt"], mixed_precision=a.mixed_precision)
    sampler = cache[row["ckpt"]]
    for k, v in sampler.defaults.items():
        if row.get(k) is None:
            row[k] = v
    # the backbone the chain runs: the generator's recorded one (a shipped generator can be re-bound to another,
    # generator_card.py --retune), part of the row's key and record
    row["backbone_asset"] = relative_to_root(resolve_recorded_path(sampler.meta.get("backbone"), row["ckpt"]) or a.backbone)
    row["map_passes"] = resolve_map_passes(sampler.model.cfg, row["map_passes"])     # 0: the generator's own
    return sampler


@torch.no_grad()
def run_row(row: dict, a, labels: np.ndarray, cache: dict) -> tuple[np.ndarray, dict]:
    """(uint8 NHWC images, timing seconds) for one row."""
    from rdpm_gddcm.backbones import GuidedBackbone
    from rdpm_gddcm.chain import RandomChooser, ancestral_sample, ode_solve, run_chain
    from rdpm_gddcm.plans import ode_times
    n = len(labels)
    timing = {"backbone_and_chain_s": 0.0, "transformer_s": 0.0, "autoencoder_s": 0.0}
    out = []
    if row["kind"] == "real":
        return train_images(a, labels, row.get("size", 32)).permute(0, 2, 3, 1).numpy(), timing
    if row["kind"] == "autoencoder":
        tok = baseline_tokenizer(a, cache)
        x = train_images(a, labels, tok.image_size)
        t0 = time.time()
        for b in range(0, n, a.batch_size):
            with torch.no_grad():
                lat = tok.autoencoder.encode(x[b:b + a.batch_size].float() / 127.5 - 1)
                out.append(to_uint8_nhwc(tok.autoencoder.decode(lat)))
        timing["autoencoder_s"] = time.time() - t0
        return np.concatenate(out), timing
    if row["kind"] == "tokens":
        t0 = time.time()
        imgs = decoded_tokens(a, labels)
        timing["backbone_and_chain_s"] = time.time() - t0          # the replay and the autoencoder's decode
        return imgs, timing
    if row["kind"] in ("generator", "mixed", "handoff"):
        sampler = generator_sampler(row, a, cache)
    if row["kind"] == "mixed":
        return mixed_rows(row, a, labels, sampler)
    tok = baseline_tokenizer(a, cache)
    for b in range(0, n, a.batch_size):
        idx = np.arange(b, min(b + a.batch_size, n))
        y = torch.from_numpy(labels[idx]).long()
        if row["kind"] in ("generator", "handoff"):
            hand_off = (row["handoff_steps"], ancestral_finish(tok.backbone, row)) if row["kind"] == "handoff" else None
            imgs, t = sampler.sample(idx, labels[idx], row["cfg_scale"], row["cfg_schedule"],
                                     row["temperature"], row["top_k"], row["top_p"], a.global_seed,
                                     min_norm_maps=row["min_norm_maps"], backbone_cfg_scale=row["backbone_cfg_scale"],
                                     map_passes=row["map_passes"], norm_bias=row["norm_bias"], hand_off=hand_off,
                                     **prior_knobs(row))
            for k in timing:
                timing[k] += t[k]
        else:
            t0 = time.time()
            if row["kind"] == "random":
                chain = run_chain(tok.backbone, tok.spec, RandomChooser([image_generator(a.global_seed, int(i)) for i in idx]),
                                  len(idx), y if tok.cfg.conditional else None, tok.device)
                lat = chain.latent
            else:                                                  # the backbone's own ODE or ancestral sampler, CFG
                bb = GuidedBackbone(tok.backbone, row["cfg_scale"]) if row["cfg_scale"] != 1.0 else tok.backbone
                fam = bb.family
                times = ode_times(fam, row["steps"])
                gens = [image_generator(a.global_seed, int(i)) for i in idx]
                noise = torch.stack([torch.randn(*bb.latent_shape, generator=g) for g in gens]).to(tok.device)
                if row["kind"] == "ancestral":
                    lat = ancestral_sample(bb, noise, times, y.to(tok.device), gens)
                else:
                    lat = ode_solve(bb, float(fam.S(times[0])) * noise, times, y.to(tok.device), fam.ode_solver)
            timing["backbone_and_chain_s"] += time.time() - t0
            t1 = time.time()
            imgs = tok.autoencoder.decode(lat)
            timing["autoencoder_s"] += time.time() - t1
        out.append(to_uint8_nhwc(imgs))
    return np.concatenate(out), timing


def ancestral_finish(backbone, row: dict):
    """A hand-off row's finish: the backbone's ancestral sampler (CFG ``backbone_finish_cfg``) from the chain's
    state at time t, over the times of its ``steps``-step schedule below t (the start of that schedule is
    what the generator's first maps replaced)."""
    from rdpm_gddcm.backbones import GuidedBackbone
    from rdpm_gddcm.chain import ancestral_sample
    from rdpm_gddcm.plans import ode_times
    w = row["backbone_finish_cfg"]
    bb = GuidedBackbone(backbone, w) if w != 1.0 else backbone

    def finish(state, t, labels, generators):
        times = [t] + [u for u in ode_times(bb.family, row["steps"]) if u < t]
        return ancestral_sample(bb, state / float(bb.family.S(t)), times, labels, generators)
    return finish


def train_images(a, labels: np.ndarray, size: int = 32) -> torch.Tensor:
    """uint8 (N, 3, size, size) `train` images: the k-th image of class c for the k-th occurrence of c."""
    from rdpm_gddcm.classifier import load_imagefolder_uint8
    per = -(-len(labels) // 10)
    x, _, _ = load_imagefolder_uint8(a.train_path, size, limit_per_class=per)    # class c at [c·per, (c+1)·per)
    seen: dict = {}
    idx = []
    for c in labels.tolist():
        idx.append(c * per + seen.get(c, 0))
        seen[c] = seen.get(c, 0) + 1
    return x[idx]


# where the stored tokens of the diagnostics come from: class-matched images, or a fixed random draw of
# images regardless of class, whole (one image per sample), one image per token map, or one per token
TRUE_FROM = ("same class", "other images", "other images, one per map", "other images, one per token")


def train_token_rows(a, labels: np.ndarray, true_from: str = "same class") -> tuple[np.ndarray, np.ndarray]:
    """(tokens, labels) of --tokens images for ``labels`` (``TRUE_FROM``): the j-th image of class c for
    the j-th occurrence of c, or other images drawn at random regardless of class. The recombined draws
    (one image per map or per token) keep each token at its own row and block, whose codebook it indexes;
    their labels are those of the images drawn for the first map's first block."""
    from rdpm_gddcm.token_io import TokenDataset
    ds = TokenDataset(a.tokens)
    if true_from not in TRUE_FROM:
        raise SystemExit(f"true_from {true_from!r}: use one of {', '.join(TRUE_FROM)}")
    if true_from == "other images":
        sel = np.random.RandomState(0).permutation(len(ds))[:len(labels)]
    elif true_from.startswith("other images, "):
        R, G = ds.tokens.shape[1:]
        shape = (len(labels), R, 1) if true_from.endswith("per map") else (len(labels), R, G)
        src = np.broadcast_to(np.random.RandomState(0).randint(0, len(ds), size=shape), (len(labels), R, G))
        tokens = np.asarray(ds.tokens[:])[src, np.arange(R)[None, :, None], np.arange(G)[None, None, :]]
        return tokens, ds.labels[src[:, 0, 0]]
    else:
        of_class = {c: np.flatnonzero(ds.labels == c) for c in np.unique(labels)}
        seen: dict = {}
        sel = []
        for c in labels.tolist():
            if seen.get(c, 0) >= len(of_class[c]):
                raise SystemExit(f"--tokens {a.tokens}: fewer than {seen[c] + 1} images of class {c}")
            sel.append(of_class[c][seen.get(c, 0)])
            seen[c] = seen.get(c, 0) + 1
        sel = np.asarray(sel)
    return ds.tokens[sel], ds.labels[sel]


class RowMixChooser:
    """Stored tokens in the rows ``true_rows``, the generator's choices in the others (diagnostics)."""

    def __init__(self, model_chooser, tokens: torch.Tensor, true_rows):
        self.model_chooser, self.tokens, self.true_rows = model_chooser, tokens, set(true_rows)

    def _choose(self, ctx):
        m = ctx.spec.row_of_step(ctx.n)
        if m in self.true_rows:
            return self.tokens[:, m].to(ctx.state.device)
        return self.model_chooser.choose(ctx)

    init = step = _choose


@torch.no_grad()
def mixed_rows(row: dict, a, labels: np.ndarray, sampler: Sampler) -> tuple[np.ndarray, dict]:
    """The generator's chain (its tuned settings, class ``labels``) with stored train tokens in the row's
    ``true_rows``: (uint8 NHWC images, timing seconds)."""
    tokens, _ = train_token_rows(a, labels, row.get("true_from", "same class"))
    out, timing = [], {"backbone_and_chain_s": 0.0, "transformer_s": 0.0, "autoencoder_s": 0.0}
    for b in range(0, len(labels), a.batch_size):
        idx = np.arange(b, min(b + a.batch_size, len(labels)))
        stored = torch.from_numpy(tokens[idx])
        imgs, t = sampler.sample(idx, labels[idx], row["cfg_scale"], row["cfg_schedule"], row["temperature"],
                                 row["top_k"], row["top_p"], a.global_seed, min_norm_maps=row["min_norm_maps"],
                                 backbone_cfg_scale=row["backbone_cfg_scale"], map_passes=row["map_passes"],
                                 norm_bias=row["norm_bias"], wrap_chooser=lambda mc: RowMixChooser(mc, stored, row["true_rows"]),
                                 **prior_knobs(row))
        out.append(to_uint8_nhwc(imgs))
        for k in timing:
            timing[k] += t[k]
    return np.concatenate(out), timing


@torch.no_grad()
def decoded_tokens(a, labels: np.ndarray) -> np.ndarray:
    """The stored --tokens of the first training images of each class (image j of class c for the
    j-th occurrence of c in ``labels``), decoded in the tokens' own precision (their header's)."""
    from rdpm_gddcm.token_io import TokenDataset
    from rdpm_gddcm.tokenizer import Tokenizer
    tok = Tokenizer.from_header(TokenDataset(a.tokens).header.to_json(), a.backbone, None, "cpu")
    tokens, tlabels = train_token_rows(a, labels)
    out = []
    for b in range(0, len(labels), a.batch_size):
        sl = slice(b, b + a.batch_size)
        out.append(to_uint8_nhwc(tok.decode(torch.from_numpy(tokens[sl]), torch.from_numpy(tlabels[sl]).long())))
    return np.concatenate(out)


def prior_knobs(row: dict) -> dict:
    """The row's init-prior setting as Sampler.sample keywords (init_prior.py)."""
    return {k: row[k] for k in PRIOR_SETTINGS}


def sample_key(row: dict, a) -> str:
    """What a row's samples depend on: kept samples are reused only when it matches (a row label alone,
    e.g. "RDPM generator (ours)", does not pin the generator's settings)."""
    # a knob at its off value is left out, so samples kept before the knob existed still match
    prior_off = row.get("init_prior", "off") == "off"
    d = {k: v for k, v in row.items() if k != "label" and not (k == "norm_bias" and not v)
         and not (prior_off and k.startswith("init_prior"))}
    return json.dumps({**d, "num_images": a.num_images, "global_seed": a.global_seed, "tokens": a.tokens,
                       "backbone": a.backbone, "mixed_precision": a.mixed_precision}, sort_keys=True, default=str)


_REF = {}


def fid_kid(imgs: np.ndarray, row: dict, a) -> dict:
    """FID and KID of the row's samples against the reference features (standard FID Inception);
    the samples' features are saved so a row can be rescored against another reference."""
    from rdpm_gddcm.fid_weights import inception_features
    from rdpm_gddcm.metrics import frechet_distance, gaussian_stats
    from torch_fidelity.metric_kid import kid_features_to_metric
    if "feats" not in _REF:
        import glob
        chunks = sorted(glob.glob(a.fid_reference))
        if not chunks:
            raise SystemExit(f"--fid-reference {a.fid_reference}: no feature chunks (run "
                             "benchmarks/bench_fid_reference.py first)")
        feats = np.concatenate([np.load(c) for c in chunks])
        _REF.update(feats=feats, stats=gaussian_stats(feats.astype(np.float64)))
    from rdpm_gddcm.metrics import resize_uint8
    t0 = time.time()
    x = resize_uint8(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), a.fid_image_size)
    f = inception_features(x).numpy()
    secs = (time.time() - t0) / len(f)
    tag = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in row["label"]).strip("_")
    Path(a.features_dir).mkdir(parents=True, exist_ok=True)
    np.save(Path(a.features_dir) / f"{a.suite}_{tag}_{len(f)}.npy", f)
    fid = frechet_distance(*gaussian_stats(f.astype(np.float64)), *_REF["stats"])
    k = kid_features_to_metric(torch.from_numpy(f), torch.from_numpy(_REF["feats"]), kid_subsets=100,
                               kid_subset_size=min(1000, len(f)), kid_degree=3, kid_gamma=None, kid_coef0=1,
                               rng_seed=2020, verbose=False)
    return {"fid": fid, "kid": float(k["kernel_inception_distance_mean"]),
            "kid_std": float(k["kernel_inception_distance_std"]),
            "fid_reference": f"{a.fid_reference_name} ({len(_REF['feats']):,} images)", "inception_s_per_image": secs,
            "fid_image_size": a.fid_image_size}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--suite", default="main", choices=["main", "ablations", "diagnostics"])
    # the defaults are the previous (pixel-space) generator's, so the commands recorded in its tables reproduce them
    p.add_argument("--generator", default=str(ROOT / "assets" / "cifar10-generator-pixels"))
    p.add_argument("--tokens", default=str(ROOT / "runs" / "tokens-cifar10-vp-8x8"),
                   help="the generator's training tokens: their header defines the baselines' plan and codebooks")
    p.add_argument("--backbone", default=str(ROOT / "assets" / "cifar10-pixels-vp"))
    p.add_argument("--head-variant", action="append", default=[], metavar="LABEL=RUN_DIR",
                   help="ablations: a generator trained like --generator but for its head (repeatable)")
    p.add_argument("--val-path", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "val"))
    p.add_argument("--train-path", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "train"))
    p.add_argument("--classifier", default=str(ROOT / "assets" / "cifar10-classifier"))
    p.add_argument("--num-images", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--cfg-scale", type=float, default=None,
                   help="generator CFG w (l_u + w·(l_c - l_u)); default: the checkpoint's rdpm-sample default")
    p.add_argument("--temperature", type=float, default=None, help="default: the checkpoint's rdpm-sample default")
    p.add_argument("--ode-cfg-scale", type=float, default=2.0, help="CFG w of the backbone's own ODE sampler")
    p.add_argument("--cfg-sweep", type=float, nargs="*", default=[1.0, 1.5, 3.0, 4.0])
    p.add_argument("--temperature-sweep", type=float, nargs="*", default=[0.7, 0.85, 1.15])
    p.add_argument("--top-k-sweep", type=int, nargs="*", default=[], help="ablations: top-k values (after the τ rows)")
    p.add_argument("--top-p-sweep", type=float, nargs="*", default=[], help="ablations: top-p values (after top-k)")
    p.add_argument("--min-norm-maps-sweep", type=int, nargs="*", default=[],
                   help="ablations: numbers of final token maps given the shortest codebook entry (after top-p)")
    p.add_argument("--min-norm-maps", type=int, default=None,
                   help="the generator rows' --min-norm-maps; default: the checkpoint's rdpm-sample default")
    p.add_argument("--backbone-cfg-sweep", type=float, nargs="*", default=[],
                   help="ablations: backbone guidance w_b values (rdpm-sample --backbone-cfg-scale; after minimum-norm)")
    p.add_argument("--backbone-cfg-scale", type=float, default=None,
                   help="the generator rows' --backbone-cfg-scale; default: the checkpoint's rdpm-sample default")
    p.add_argument("--map-passes-sweep", type=int, nargs="*", default=[],
                   help="ablations: masked passes per token map (rdpm-sample --map-passes; after backbone guidance)")
    p.add_argument("--map-passes", type=int, default=None,
                   help="the generator rows' --map-passes; default: the checkpoint's rdpm-sample default")
    p.add_argument("--norm-bias-sweep", type=float, nargs="*", default=[],
                   help="ablations: norm biases β (rdpm-sample --norm-bias; after masked passes)")
    p.add_argument("--norm-bias", type=float, default=None,
                   help="the generator rows' --norm-bias; default: the checkpoint's rdpm-sample default")
    p.add_argument("--init-prior-guidance-sweep", type=float, nargs="*", default=[],
                   help="ablations: Gaussian init prior guidance values w (rdpm-sample --init-prior gaussian "
                        "--init-prior-guidance; after the norm biases), each at every --init-prior-scale-sweep value")
    p.add_argument("--init-prior-scale-sweep", type=float, nargs="*", default=[1.0],
                   help="ablations: Gaussian init prior scales s for the rows above")
    p.add_argument("--init-prior", default=None, choices=["off", "gaussian"],
                   help="the generator rows' --init-prior; default: the checkpoint's rdpm-sample default")
    p.add_argument("--init-prior-guidance", type=float, default=None,
                   help="the generator rows' --init-prior-guidance; default: the checkpoint's rdpm-sample default")
    p.add_argument("--init-prior-scale", type=float, default=None,
                   help="the generator rows' --init-prior-scale; default: the checkpoint's rdpm-sample default")
    p.add_argument("--cfg-schedule-sweep", nargs="*", default=[],
                   help="ablations: CFG schedules, e.g. interval:1-6 (rdpm-sample --cfg-schedule; after the norm biases)")
    p.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "bf16"],
                   help="backbone and generator precision (rdpm_gddcm.precision)")
    p.add_argument("--fid-reference", default=None, metavar="GLOB",
                   help="Inception feature chunks of the FID reference, e.g. 'runs/fid-features/train-*.npy' (written "
                        "by bench_fid_reference.py): adds FID and KID against all of them (standard FID Inception)")
    p.add_argument("--sample-only", action="store_true",
                   help="only sample the rows and keep them in --features-dir (score later without resampling)")
    p.add_argument("--fid-image-size", type=int, default=32,
                   help="samples are scored at this resolution (the reference's: CIFAR-10 is 32 px; the latent stack "
                        "samples at 64 px), downsampled by rdpm_gddcm.metrics.resize_uint8")
    p.add_argument("--fid-reference-name", default="CIFAR-10 train", help="what --fid-reference holds (for the table)")
    p.add_argument("--features-dir", default=str(ROOT / "runs" / "generator-features"),
                   help="where each row's sample features are kept (rescoring without resampling)")
    p.add_argument("--global-seed", type=int, default=0)
    p.add_argument("--rows", default=None, help="comma-separated row numbers to run (default: all)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    out = Path(a.out)
    res = json.loads(out.read_text()) if out.exists() else {"rows": []}
    done = {r["label"] for r in res["rows"]}
    rows = generator_rows(a)
    for r in rows:         # --min-norm-maps and --backbone-cfg-scale apply to every generator row not setting them
        if r["kind"] in ("generator", "mixed", "handoff") and "min_norm_maps" not in r:
            r["min_norm_maps"] = a.min_norm_maps
        if r["kind"] in ("generator", "mixed", "handoff") and "backbone_cfg_scale" not in r:
            r["backbone_cfg_scale"] = a.backbone_cfg_scale
        if r["kind"] in ("generator", "mixed", "handoff") and "map_passes" not in r:
            r["map_passes"] = a.map_passes
        if r["kind"] in ("generator", "mixed", "handoff") and "norm_bias" not in r:
            r["norm_bias"] = a.norm_bias
        for k in PRIOR_SETTINGS:
            if r["kind"] in ("generator", "mixed", "handoff") and k not in r:
                r[k] = getattr(a, k)
    if a.rows:
        rows = [rows[int(i)] for i in a.rows.split(",")]
    labels = labels_for(a.num_images, 10, None)
    reference = load_source(a.val_path, "reference")
    cache: dict = {}
    for row in rows:
        if row["kind"] in ("generator", "mixed", "handoff"):
            generator_sampler(row, a, cache)     # the row's settings, also when its samples were kept earlier
            if row["min_norm_maps"] and "minimum-norm" not in row["label"]:    # rows differ only by it otherwise
                row["label"] += f", minimum-norm last {row['min_norm_maps']} maps"
            if row["backbone_cfg_scale"] != 1.0 and "backbone CFG" not in row["label"]:
                row["label"] += f", backbone CFG w_b={row['backbone_cfg_scale']}"
            if row["map_passes"] > 1 and "passes per map" not in row["label"]:
                row["label"] += f", {row['map_passes']} passes per map"
            if row["norm_bias"] and "norm bias" not in row["label"]:
                row["label"] += f", norm bias β={row['norm_bias']}"
            if row["init_prior"] != "off" and "init prior" not in row["label"]:
                row["label"] += f", Gaussian init prior w={row['init_prior_guidance']}, s={row['init_prior_scale']}"
        if row["label"] in done:
            continue
        tag = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in row["label"]).strip("_")
        kept = Path(a.features_dir) / f"{a.suite}_{tag}_{len(labels)}_samples.npz"
        settings = sample_key(row, a)
        z = np.load(kept, allow_pickle=False) if kept.exists() else None
        if z is not None and "settings" in z and str(z["settings"]) == settings:
            # sampled earlier with these settings (e.g. by --sample-only): score only
            imgs, timing, wall = z["arr_0"], json.loads(str(z["timing"])), float(z["wall_s"])
        else:
            t0 = time.time()
            imgs, timing = run_row(row, a, labels, cache)
            wall = time.time() - t0
            kept.parent.mkdir(parents=True, exist_ok=True)
            np.savez(kept.with_suffix(".tmp.npz"), arr_0=imgs, labels=labels, timing=json.dumps(timing), wall_s=wall,
                     settings=settings)
            kept.with_suffix(".tmp.npz").replace(kept)
        if a.sample_only:
            print(f"{row['label']}: {len(imgs)} samples kept in {kept}")
            continue
        values, info, notes = proxy_metrics(Source(path=f"<{row['label']}>", kind="npz-images", dataset=ArrayImages(imgs)),
                                            reference, a.classifier, labels=labels)
        fid_cols = {}
        # real `train` images would overlap a train reference: no FID for that row then
        if a.fid_reference and not (row["kind"] == "real" and "train" in a.fid_reference_name.lower()):
            fid_cols = fid_kid(imgs, row, a)
        r = {**{k: v for k, v in row.items() if k != "ckpt"}, **fid_cols, PROXY_FD: values.get(PROXY_FD),
             PROXY_ACC: values.get(PROXY_ACC), "num_images": len(imgs), "wall_s": wall,
             "seconds_per_image": {k: v / len(imgs) for k, v in timing.items()},
             "generator": str(Path(row["ckpt"]).relative_to(ROOT)) if row.get("ckpt", "").startswith(str(ROOT)) else row.get("ckpt")}
        r.setdefault("backbone_asset", relative_to_root(a.backbone))
        if row.get("ckpt") in cache:         # which generator (a path's weights change when an asset is replaced)
            sampler = cache[row["ckpt"]]
            r["generator_model"] = sampler.meta.get("train_config", {}).get("model")
            r["generator_parameters_m"] = round(count_params(sampler.model) / 1e6, 3)
            r["generator_history_maps"] = sampler.model.cfg.history_maps
            r["generator_two_pass"] = sampler.model.cfg.two_pass
            r["generator_map_passes"] = sampler.model.cfg.map_passes
        res["rows"].append(r)
        grid_dir = ROOT / "benchmarks" / "results" / "generator_grids" / out.stem    # one folder per results JSON
        grid_dir.mkdir(parents=True, exist_ok=True)
        from rdpm_gddcm.data import save_image_grid
        per = min(8, len(labels) // 10)
        sel = np.concatenate([np.where(labels == c)[0][:per] for c in range(10)])
        order = sel.reshape(10, per).T.reshape(-1)        # row = one image per class
        save_image_grid(torch.from_numpy(imgs[order]).permute(0, 3, 1, 2).float() / 127.5 - 1,
                        str(grid_dir / f"{a.suite}_{tag}.png"), nrow=10)
        cmd = shlex.join(sys.argv)
        res.setdefault("commands", [])
        if cmd not in res["commands"]:
            res["commands"].append(cmd)
        res.update({"reference": "CIFAR-10 val (5000 images)", "metric_note": info["note"], "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
                    "load_average": list(__import__("os").getloadavg())})
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=2))
        tmp.replace(out)
        print(f"{row['label']:40s} {PROXY_FD} {values.get(PROXY_FD):8.2f}  {PROXY_ACC} {values.get(PROXY_ACC):.3f}  "
              f"{wall / len(imgs):.3f} s/image")


if __name__ == "__main__":
    main()
