"""``rdpm-sample``: class-conditional images from a trained generator (SPEC §9).

The gDDCM chain runs with the generator as chooser: at every step the backbone gives x̂0, the
generator scores the K codebook entries of every block from (state, x̂0, step, class), CFG mixes
conditional and unconditional logits ``l = l_u + w·(l_c - l_u)`` (w = 1: off), top-k/top-p filter
them, and Gumbel-max picks ``argmax(l/τ + G)`` (τ = 0: greedy). The final ODE and the
autoencoder turn the state into an image.

Backbone guidance (``--backbone-cfg-scale`` w_b, ours; 1 = off): the chain's own backbone calls, and the
final ODE, use classifier-free guidance ``x̂0 = x̂0_u + w_b·(x̂0_c - x̂0_u)`` (likewise ε̂), as the backbone's
own ODE sampler does. The generator then sees the guided x̂0 and the states it produces: class guidance
can move from the generator's logits (``--cfg-scale``) to the denoiser, whose guided x̂0 every later step
builds on. It needs class-conditional tokens (``rdpm-tokenize --conditional``: the backbone is given the
class) and costs one more backbone call per step.

Image i's randomness comes only from its own generator, seeded by (--global-seed, i), and its
label is the i-th of a class-balanced cycle (or of --class-labels): 1 process or N processes
(``accelerate launch``), batch 1 or 64, give the same images in fp32 (under bf16 autocast the
kernels' results depend on the batch, so an image can change with it: pass --mixed-precision no
where that matters). Writes {i:06d}.png, grid.png,
samples.npz (arr_0: uint8 NHWC, ADM evaluator format; labels) and sample_config.json.

Re-running into the same --sample-dir resumes: images whose PNG exists are kept (PNGs are written
atomically, so an existing file is complete) and only the missing indices are sampled, which gives
the same images as an uninterrupted run in fp32 (under bf16 the resumed images form other batches:
valid samples of the same settings, not bit-identical ones). A larger --num-samples extends a
finished run.
sample_settings.json records everything an image depends on; a re-run with different settings is
refused rather than mixing two runs' samples.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import cli
from .cli import class_labels, finite_float, nonneg_float, nonneg_int, open_probability, positive_int
from .generator import ModelChooser, resolve_map_passes
from .guidance import parse_cfg_schedule
from .precision import CHOICES, HELP as PRECISION_HELP
from .files import write_json_atomic


# Used where neither the command line nor the checkpoint's generator.json sets a sampling knob.
SAMPLING_DEFAULTS = {"cfg_scale": 1.5, "cfg_schedule": "constant", "temperature": 1.0, "top_k": 0, "top_p": 1.0,
                     "min_norm_maps": 0, "backbone_cfg_scale": 1.0, "map_passes": 0, "norm_bias": 0.0,
                     "init_prior": "off", "init_prior_guidance": 1.0, "init_prior_scale": 1.0}


def _schedule(text: str) -> str:
    try:
        parse_cfg_schedule(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _init_prior_kind(text: str) -> str:
    from .init_prior import PRIOR_KINDS
    if text not in PRIOR_KINDS:
        raise argparse.ArgumentTypeError(f"{text!r}: use one of {', '.join(PRIOR_KINDS)}")
    return text


# how a recorded value is checked: the command line's own parsers
_RECORDED = {"cfg_scale": nonneg_float, "cfg_schedule": _schedule, "temperature": nonneg_float, "top_k": nonneg_int,
             "top_p": open_probability, "min_norm_maps": nonneg_int, "backbone_cfg_scale": nonneg_float,
             "map_passes": nonneg_int, "norm_bias": finite_float, "init_prior": _init_prior_kind,
             "init_prior_guidance": finite_float, "init_prior_scale": nonneg_float}


def recorded_sampling(meta: dict, source: str) -> dict:
    """SAMPLING_DEFAULTS overridden by what the checkpoint records (generator.json "sampling": the
    setting it was tuned to, plus "tuned_by", the benchmark that chose it)."""
    rec = meta.get("sampling") or {}
    unknown = sorted(set(rec) - set(SAMPLING_DEFAULTS) - {"tuned_by"}) if isinstance(rec, dict) else ["(not a mapping)"]
    if unknown:
        raise ValueError(f"{source}: \"sampling\" holds {unknown}; expected a mapping with some of "
                         f"{sorted(SAMPLING_DEFAULTS)}: fix or delete that entry")
    out = dict(SAMPLING_DEFAULTS)
    for k in set(rec) & set(SAMPLING_DEFAULTS):
        try:
            out[k] = _RECORDED[k](str(rec[k]))
        except (argparse.ArgumentTypeError, ValueError):
            raise ValueError(f"{source}: recorded sampling setting {k}={rec[k]!r} is invalid: fix or delete it") from None
    return out


def parse_args(argv=None):
    p = cli.ArgumentParser(prog="rdpm-sample", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", required=True, help="generator run dir (generator.json + .safetensors; EMA weights) or a .safetensors")
    p.add_argument("--backbone", default=None, help="backbone dir (default: the one recorded in generator.json)")
    p.add_argument("--autoencoder", default=None, help="autoencoder spec (default: the backbone's)")
    p.add_argument("--num-samples", type=positive_int, default=100)
    p.add_argument("--class-labels", type=class_labels, default=None, help="comma-separated labels cycled over the samples (default: all classes, balanced)")
    # The sampling knobs default to what the checkpoint records (generator.json "sampling", written when
    # a generator is tuned and shipped), else to SAMPLING_DEFAULTS; SUPPRESS keeps "not given" distinguishable.
    recorded = "default: the checkpoint's recorded setting, else {}"
    p.add_argument("--cfg-scale", type=nonneg_float, default=argparse.SUPPRESS,
                   help=f"w in l_u + w·(l_c - l_u); 1 = no guidance ({recorded.format(SAMPLING_DEFAULTS['cfg_scale'])})")
    p.add_argument("--cfg-schedule", type=_schedule, default=argparse.SUPPRESS,
                   help="constant; linear ramps w from 1 at the first token map; interval:A-B guides token maps A to B "
                        f"only ({recorded.format(SAMPLING_DEFAULTS['cfg_schedule'])})")
    p.add_argument("--temperature", type=nonneg_float, default=argparse.SUPPRESS,
                   help=f"Gumbel-max temperature τ, 0 = greedy argmax ({recorded.format(SAMPLING_DEFAULTS['temperature'])})")
    p.add_argument("--top-k", type=nonneg_int, default=argparse.SUPPRESS,
                   help=f"keep the k best entries per block, 0 = all ({recorded.format(SAMPLING_DEFAULTS['top_k'])})")
    p.add_argument("--top-p", type=open_probability, default=argparse.SUPPRESS,
                   help=f"nucleus sampling mass, 1 = off ({recorded.format(SAMPLING_DEFAULTS['top_p'])})")
    p.add_argument("--min-norm-maps", type=nonneg_int, default=argparse.SUPPRESS,
                   help="the last M token maps take each block's shortest codebook entry, the least injected noise, "
                        f"instead of a sampled token (generator.py) ({recorded.format(SAMPLING_DEFAULTS['min_norm_maps'])})")
    p.add_argument("--backbone-cfg-scale", type=nonneg_float, default=argparse.SUPPRESS,
                   help="classifier-free guidance w_b of the chain's backbone calls and final ODE, 1 = off; needs "
                        f"class-conditional tokens (see above) ({recorded.format(SAMPLING_DEFAULTS['backbone_cfg_scale'])})")
    p.add_argument("--map-passes", type=nonneg_int, default=argparse.SUPPRESS,
                   help="draw each token map in this many masked passes (generator.py); more than 1 needs a generator "
                        "trained with rdpm-train --map-passes, 0 = the number it was trained for "
                        f"({recorded.format(SAMPLING_DEFAULTS['map_passes'])})")
    p.add_argument("--norm-bias", type=finite_float, default=argparse.SUPPRESS,
                   help="β: every sampled chain-step map's logits get -β·½‖C_k‖²: β > 0 favours shorter codebook "
                        f"entries (less injected noise; generator.py), β < 0 longer ones, 0 = off ({recorded.format(SAMPLING_DEFAULTS['norm_bias'])})")
    p.add_argument("--init-prior", type=_init_prior_kind, default=argparse.SUPPRESS,
                   help="gaussian: draw the init token map jointly from the checkpoint's init prior "
                        "(init_prior.safetensors, made by rdpm-fit-init-prior); off: the generator's own per-block "
                        f"draws ({recorded.format(SAMPLING_DEFAULTS['init_prior'])})")
    p.add_argument("--init-prior-guidance", type=finite_float, default=argparse.SUPPRESS,
                   help="w: the prior's latent mean is μ + w·(μ_class − μ), 1 = the class's own mean "
                        f"({recorded.format(SAMPLING_DEFAULTS['init_prior_guidance'])})")
    p.add_argument("--init-prior-scale", type=nonneg_float, default=argparse.SUPPRESS,
                   help=f"s: the prior's spread, 1 = the fitted covariance ({recorded.format(SAMPLING_DEFAULTS['init_prior_scale'])})")
    p.add_argument("--global-seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per chain run (in fp32 results do not depend on it; under bf16 autocast the last bits can, see above)")
    p.add_argument("--sample-dir", required=True)
    p.add_argument("--grid-size", type=positive_int, default=100, help="images in grid.png")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--mixed-precision", default="auto", choices=CHOICES,
                   help=f"{PRECISION_HELP}. Resolved for the generator and the backbone separately (sampling replays "
                        "no stored tokens, so the backbone need not run in the tokens' precision); both are "
                        "recorded in sample_settings.json")
    return p.parse_args(argv)


def image_generator(global_seed: int, index: int) -> torch.Generator:
    """The only source of randomness of image ``index``."""
    h = hashlib.blake2b(f"rdpm-sample:{global_seed}:{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(h, "little") & ((1 << 63) - 1))


def labels_for(n: int, num_classes: int, class_labels: str | None) -> np.ndarray:
    if class_labels:
        vals = [int(v) for v in class_labels.split(",")]
        bad = [v for v in vals if not 0 <= v < num_classes]
        if bad:
            raise ValueError(f"--class-labels {bad} outside [0, {num_classes})")
        return np.array([vals[i % len(vals)] for i in range(n)])
    return np.arange(n) % num_classes


def resolve_recorded_path(spec: str | None, ckpt) -> str | None:
    """A path recorded in generator.json: as written (relative to the working directory), else
    relative to the generator's own directory (how shipped assets point at their backbone)."""
    if spec is None or ":" in spec or Path(spec).exists():
        return spec
    base = Path(ckpt) if Path(ckpt).is_dir() else Path(ckpt).parent
    return str(base / spec) if (base / spec).exists() else spec


class Sampler:
    """Generator + tokenizer (rebuilt from the tokens' header) + sampling settings."""

    def __init__(self, ckpt, backbone=None, autoencoder=None, device="cpu", mixed_precision="auto"):
        from .generator import load_generator
        from .header import TokenHeader
        from .tokenizer import Tokenizer
        self.model, self.meta = load_generator(ckpt, device)
        self.header = TokenHeader.from_json(self.meta["tokens_header"], source=f"{ckpt} (its tokens' header)")
        bb_spec = backbone or resolve_recorded_path(self.meta.get("backbone"), ckpt)
        if bb_spec is None:
            raise ValueError("this generator does not record its backbone: pass --backbone DIR")
        # checks the header against these models; the backbone is loaded in the tokens' precision
        self.tokenizer = Tokenizer.from_header(self.header, bb_spec, autoencoder or self.meta.get("autoencoder"), device)
        bb = self.tokenizer.backbone
        self.device = torch.device(device)
        self.backbone_precision = bb.set_precision(mixed_precision, device)
        self.generator_precision = self.model.resolve_precision(mixed_precision, device)
        self.autocast = self.generator_precision.dtype
        self.num_classes = self.model.cfg.num_classes
        self.defaults = recorded_sampling(self.meta, f"{ckpt} (generator.json)")
        from .init_prior import GaussianInitPrior
        ckpt_dir = self.ckpt_dir = Path(ckpt) if Path(ckpt).is_dir() else Path(ckpt).parent
        self.init_prior = GaussianInitPrior.load(ckpt_dir)
        if self.init_prior is not None:
            self.init_prior.check_matches(self.num_classes, self.tokenizer.spec.grid.latent_shape, str(ckpt_dir))

    def share_precision(self, state):
        """Use the main process's resolved precisions on every process (``precision.shared_precision``)."""
        from .precision import shared_precision
        self.backbone_precision = self.tokenizer.backbone.use_precision(shared_precision(self.backbone_precision, state))
        self.generator_precision = shared_precision(self.generator_precision, state)
        self.autocast = self.generator_precision.dtype

    def settings(self, a) -> dict:
        """The sampling knobs of ``a`` (an argparse namespace), the checkpoint's recorded ones where not given."""
        return {k: getattr(a, k, self.defaults[k]) for k in SAMPLING_DEFAULTS}

    def chain_backbone(self, backbone_cfg_scale: float):
        """The backbone the chain calls: the tokens' own, guided with ``backbone_cfg_scale`` unless it is 1
        (module docstring: backbone guidance)."""
        from .backbones import GuidedBackbone
        bb = self.tokenizer.backbone
        if backbone_cfg_scale == 1.0:
            return bb
        if not self.tokenizer.cfg.conditional:
            raise ValueError(f"--backbone-cfg-scale {backbone_cfg_scale}: this generator's tokens were made without "
                             "the class (not rdpm-tokenize --conditional), so the chain's backbone gets no label to "
                             "guide; use 1, or tokens made with --conditional")
        return GuidedBackbone(bb, backbone_cfg_scale)

    def prior_for(self, kind: str):
        """The init prior a sampling setting asks for (None: the generator's own init map)."""
        if kind == "off":
            return None
        if self.init_prior is None:
            raise ValueError(f"--init-prior {kind}: this generator has no init prior ({self.ckpt_dir}/init_prior.safetensors); "
                             "fit one with rdpm-fit-init-prior, or pass --init-prior off")
        if not self.tokenizer.spec.has_init_token:
            raise ValueError(f"--init-prior {kind}: this generator's tokens have no init map (init is not codebook); "
                             "pass --init-prior off")
        return self.init_prior

    @torch.no_grad()
    def sample(self, indices, labels, cfg_scale=None, cfg_schedule=None, temperature=None, top_k=None, top_p=None,
               global_seed=0, return_tokens=False, wrap_chooser=None, min_norm_maps=None, backbone_cfg_scale=None,
               map_passes=None, norm_bias=None, hand_off=None, init_prior=None, init_prior_guidance=None,
               init_prior_scale=None):
        """Images (and tokens) for ``indices``; a knob left None takes the checkpoint's recorded setting.
        ``wrap_chooser(model_chooser) -> chooser`` lets a caller pick some steps itself (benchmark diagnostics);
        ``hand_off = (k, finish)``: the generator draws the first k chain steps only and ``finish(state, t, labels,
        generators) -> latent`` samples on from that state at time t, given the images' classes and their
        generators (benchmark diagnostics)."""
        from .chain import run_chain
        d = self.defaults
        cfg_scale = d["cfg_scale"] if cfg_scale is None else cfg_scale
        cfg_schedule = d["cfg_schedule"] if cfg_schedule is None else cfg_schedule
        temperature = d["temperature"] if temperature is None else temperature
        top_k = d["top_k"] if top_k is None else top_k
        top_p = d["top_p"] if top_p is None else top_p
        min_norm_maps = d["min_norm_maps"] if min_norm_maps is None else min_norm_maps
        backbone_cfg_scale = d["backbone_cfg_scale"] if backbone_cfg_scale is None else backbone_cfg_scale
        map_passes = d["map_passes"] if map_passes is None else map_passes
        norm_bias = d["norm_bias"] if norm_bias is None else norm_bias
        init_prior = d["init_prior"] if init_prior is None else init_prior
        init_prior_guidance = d["init_prior_guidance"] if init_prior_guidance is None else init_prior_guidance
        init_prior_scale = d["init_prior_scale"] if init_prior_scale is None else init_prior_scale
        prior = self.prior_for(init_prior)
        tok = self.tokenizer
        backbone = self.chain_backbone(backbone_cfg_scale)
        gens = [image_generator(global_seed, int(i)) for i in indices]
        y = torch.as_tensor(np.asarray(labels)).long()
        chooser = ModelChooser(self.model, y, gens, cfg_scale, cfg_schedule, temperature, top_k, top_p, self.autocast,
                               min_norm_maps, map_passes, norm_bias, prior, init_prior_guidance, init_prior_scale)
        t0 = time.time()
        out = run_chain(backbone, tok.spec, wrap_chooser(chooser) if wrap_chooser else chooser, len(indices),
                        y if tok.cfg.conditional else None, self.device, num_steps=hand_off[0] if hand_off else None)
        latent = out.latent
        if hand_off:
            latent = hand_off[1](out.state, tok.spec.plan.steps[hand_off[0] - 1][2], y.to(self.device), gens)
        t_chain = time.time() - t0
        t1 = time.time()
        images = tok.autoencoder.decode(latent)
        timing = {"transformer_s": chooser.time_in_model, "backbone_and_chain_s": t_chain - chooser.time_in_model,
                  "autoencoder_s": time.time() - t1}
        return (images, out.tokens, timing) if return_tokens else (images, timing)


# images do not depend on these (mixed_precision: the resolved precisions are in the settings instead;
# the model paths: their weights' hashes are, so a relative and an absolute path to one model agree)
RESUME_IGNORED = ("batch_size", "sample_dir", "grid_size", "num_samples", "mixed_precision", "ckpt", "backbone",
                  "autoencoder")


def sample_settings(a, sampler) -> dict:
    """What one image depends on (besides its index): the resume key of a sample directory."""
    from .backbones import tensors_sha256
    d = {k: v for k, v in vars(a).items() if k not in RESUME_IGNORED}
    d["device"] = torch.device(a.device).type               # cpu and cuda kernels differ in the last bits
    d["generator_sha256"] = tensors_sha256(v for _, v in sorted(sampler.model.state_dict().items()))
    if a.init_prior != "off":                                  # the images depend on the prior's numbers too
        p = sampler.init_prior
        d["init_prior_sha256"] = tensors_sha256([p.means, p.factors, p.residual_std])
    d["backbone_sha256"] = sampler.tokenizer.backbone.weights_hash()
    ae = sampler.tokenizer.autoencoder.identity()
    d["autoencoder_identity"] = ae.get("sha256") or ae.get("name")
    d["backbone_precision"] = sampler.backbone_precision.mode       # the resolved choices, not "auto"
    d["generator_precision"] = sampler.generator_precision.mode
    return d


def check_resumable(out: Path, settings: dict) -> None:
    """Refuse to resume into a directory whose samples were made with other settings."""
    f = out / "sample_settings.json"
    if not f.exists():
        if any(out.glob("[0-9]*.png")):
            raise ValueError(f"{out} already holds sample PNGs but no sample_settings.json, so they cannot be "
                             "checked against this run: pass a new --sample-dir or empty this one")
        return
    try:
        old = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f} is not valid JSON ({e}): pass a new --sample-dir or delete it") from None
    # a directory written before a knob existed was sampled at that knob's default (min_norm_maps: 0, backbone_cfg_scale: 1)
    old.setdefault("min_norm_maps", SAMPLING_DEFAULTS["min_norm_maps"])
    old.setdefault("backbone_cfg_scale", SAMPLING_DEFAULTS["backbone_cfg_scale"])
    old.setdefault("map_passes", SAMPLING_DEFAULTS["map_passes"])
    old.setdefault("norm_bias", SAMPLING_DEFAULTS["norm_bias"])
    from .init_prior import PRIOR_SETTINGS
    for k in PRIOR_SETTINGS:
        old.setdefault(k, SAMPLING_DEFAULTS[k])
    diff = {k: (old.get(k), settings.get(k)) for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)}
    if diff:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{out} holds samples made with other settings ({shown}); resuming would mix two runs: "
                         "pass a new --sample-dir, or re-run with the recorded settings")


def run(a):
    from accelerate import PartialState

    from .data import save_image_grid, save_images
    state = PartialState(cpu=a.device == "cpu")
    device = state.device if a.device != "cpu" else torch.device("cpu")
    sampler = Sampler(a.ckpt, a.backbone, a.autoencoder, device, a.mixed_precision)
    sampler.share_precision(state)               # every process samples as sample_settings.json records
    for k, v in sampler.settings(a).items():        # resolved before anything is recorded
        setattr(a, k, v)
    if a.min_norm_maps > sampler.model.cfg.num_rows:
        raise ValueError(f"--min-norm-maps {a.min_norm_maps}: this generator's tokens have {sampler.model.cfg.num_rows} "
                         "maps; pass at most that (0 samples every map)")
    sampler.chain_backbone(a.backbone_cfg_scale)     # refuses guidance the tokens' backbone cannot take, before writing
    resolve_map_passes(sampler.model.cfg, a.map_passes)         # likewise passes it was not trained for
    sampler.prior_for(a.init_prior)                             # and an init prior it does not have
    out = Path(a.sample_dir)
    settings = json.loads(json.dumps(sample_settings(a, sampler), default=str))
    check_resumable(out, settings)              # every process checks, so all fail together
    labels = labels_for(a.num_samples, sampler.num_classes, a.class_labels)     # validate before writing
    if out.is_dir():
        beyond = sorted(int(p.stem) for p in out.glob("[0-9]*.png") if p.stem.isdigit() and int(p.stem) >= a.num_samples)
        if beyond:
            raise ValueError(f"{out} already holds {beyond[-1] + 1} or more samples but --num-samples is {a.num_samples}: "
                             f"pass --num-samples {beyond[-1] + 1} (or more), or a new --sample-dir")
    state.wait_for_everyone()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "sample_settings.json").exists():
            write_json_atomic(out / "sample_settings.json", settings)
    state.wait_for_everyone()
    done = {i for i in range(a.num_samples) if (out / f"{i:06d}.png").exists()}
    if state.is_main_process:
        origin = "the checkpoint's tuned setting" if "sampling" in sampler.meta else "library defaults"
        print("sampling with " + ", ".join(f"{k}={getattr(a, k)}" for k in SAMPLING_DEFAULTS)
              + f" (where not given: {origin})")
    if done and state.is_main_process:
        print(f"resuming: {len(done)} of {a.num_samples} samples already in {out}")
    mine = np.array([i for i in range(a.num_samples)[state.process_index::state.num_processes] if i not in done],
                    dtype=np.int64)
    timing = {"transformer_s": 0.0, "backbone_and_chain_s": 0.0, "autoencoder_s": 0.0}
    t0 = time.time()
    for b in tqdm(range(0, len(mine), a.batch_size), disable=not state.is_local_main_process, desc="sampling"):
        idx = mine[b:b + a.batch_size]
        imgs, t = sampler.sample(idx, labels[idx], a.cfg_scale, a.cfg_schedule, a.temperature, a.top_k, a.top_p, a.global_seed,
                                 min_norm_maps=a.min_norm_maps, backbone_cfg_scale=a.backbone_cfg_scale,
                                 map_passes=a.map_passes, norm_bias=a.norm_bias, init_prior=a.init_prior,
                                 init_prior_guidance=a.init_prior_guidance, init_prior_scale=a.init_prior_scale)
        for k in timing:
            timing[k] += t[k]
        save_images(imgs.cpu(), [str(out / f"{i:06d}.png") for i in idx])
    state.wait_for_everyone()
    if state.is_main_process:
        from PIL import Image
        arr = np.stack([np.asarray(Image.open(out / f"{i:06d}.png").convert("RGB")) for i in range(a.num_samples)])
        tmp = out / ".samples.tmp.npz"
        np.savez(tmp, arr_0=arr, labels=labels)
        tmp.replace(out / "samples.npz")
        k = min(a.grid_size, a.num_samples)
        grid = torch.from_numpy(arr[:k]).permute(0, 3, 1, 2).float() / 127.5 - 1
        save_image_grid(grid, str(out / "grid.png"), nrow=max(1, min(sampler.num_classes, k)))
        wall = time.time() - t0
        made = a.num_samples - len(done)
        write_json_atomic(out / "sample_config.json", {**vars(a), "num_processes": state.num_processes,
                                                       "kept_from_earlier_runs": len(done), "sampled_this_run": made,
                                                       "wall_s": wall, "seconds_per_image": wall / max(made, 1),
                                                       "timing_main_process": timing,
                                                       "precision": {"backbone": sampler.backbone_precision.to_json(),
                                                                     "generator": sampler.generator_precision.to_json()},
                                                       "tokens_header": sampler.meta["tokens_header"]})
        print(f"wrote {a.num_samples} samples to {out} (grid.png, samples.npz; {made} sampled now) in {wall:.1f} s")


def main(argv=None):
    from .cli import run_command
    a = parse_args(argv)
    return run_command("rdpm-sample", lambda: run(a))


if __name__ == "__main__":
    main()
