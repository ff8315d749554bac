"""``rdpm-train-backbone``: train a class-conditional diffusion backbone (VP-ε, EDM, or flow).

Runs unchanged from one CPU process to many GPUs under ``accelerate launch``. The dataset is
encoded once by the frozen autoencoder and cached (fp16) in the run directory, so training reads
tensors, not JPEGs. Each global batch is a fixed slice of a (seed, epoch) permutation, so
``--resume-from-checkpoint latest`` restores model, EMA, optimizer, RNG *and* data position.

Losses (SPEC §1 families, ``Family.loss`` / ``Family.training_times``): VP ε-MSE with t ~ U{0..T-1};
EDM's weighted x̂0-MSE with ln σ ~ N(-1.2, 1.2²); flow velocity-MSE (v = ε - x) with t ~ logit-normal(0, 1).
Labels are dropped to the null class with probability ``--label-dropout`` (CFG).

Fine-tuning: ``--init-from DIR`` starts from an exported backbone (same network and family).
``--focus-fraction F --focus-quantile Q`` draws a fraction F of each batch's noise levels from
the lowest-noise Q quantile of the family's training distribution (e.g. VP t < Q·T); the rest
of the batch keeps every noise level trained. Lower x̂0 error at a plan's times does not by itself
mean better tokens: the p=0 plan (SPEC §3) calls the backbone at one small T_s, but on states built
from codebook vectors, not on natural noisy images (the README's limitations list has a measured case).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from . import cli
from .backbones import NetworkBackbone
from .chain import own_sample
from .cli import nonneg_float, nonneg_int, open_probability, positive_int, probability
from .families import Family, broadcast_time
from .networks import UNET_CONFIGS, UNet, UNetConfig
from .precision import Precision, resolve_precision
from .training import (EMA, TrainConfig, add_train_args, backward_and_step, checkpoint_or_stop, drop_labels,
                       epoch_permutation, find_checkpoint, new_run_or_nothing, restart_run_clock, start_run,
                       training_device, with_run_state, write_json_atomic)

FAMILY_OF = {"vp": "vp-discrete", "vp-continuous": "vp-continuous", "ve": "ve", "edm": "ve", "flow": "flow",
             "consistency": "consistency"}
# a run may start from a backbone of its own family, or (consistency training, ECT) from a VE/EDM one
INIT_FROM_FAMILIES = {"consistency": ("consistency", "ve")}


@dataclass
class BackboneTrainConfig(TrainConfig):
    data_path: str = "procedural:2000"
    image_size: int = 32
    family: str = "vp"
    autoencoder: str = "pixels"
    model: str = "unet-cpu"
    num_classes: int | None = None          # default: from the dataset
    results_dir: str = "results/backbone"
    hflip: bool = True
    sample_steps: int = 50
    skip_corrupt: bool = False
    num_images: int | None = None           # class-balanced subset (stride over the sorted dataset)
    init_from: str | None = None            # exported backbone dir to fine-tune from
    focus_quantile: float = 1.0             # see diffusion_loss: the low-noise quantile to focus on
    focus_fraction: float = 0.0             # the share of each batch drawn from that quantile (0 = off)
    ect_halvings: float = 8.0               # consistency training: Δt shrinks by 2^-H over the run (ECT: 8)
    export_checkpoint: str | None = None    # export this checkpoint's EMA weights and exit (no training)
    export_dir: str | None = None           # where --export-checkpoint writes (default RUN/export/step_N)


def parse_args(argv=None) -> BackboneTrainConfig:
    d = BackboneTrainConfig()
    p = cli.ArgumentParser(prog="rdpm-train-backbone", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-path", default=d.data_path, help="ImageFolder root, 'procedural[:N]', or 'cifar10-download:ROOT'")
    p.add_argument("--image-size", type=positive_int, default=d.image_size, help="images are resized + center-cropped to this")
    p.add_argument("--family", default=d.family, choices=sorted(FAMILY_OF), help="vp = DDPM ε-pred (T=1000, linear β); ve/edm = EDM x̂0-pred; flow = rectified-flow velocity; "
                        "consistency = consistency training (ECT; start it from an EDM backbone with --init-from)")
    p.add_argument("--autoencoder", default=d.autoencoder, help="pixels | taef2:DIR | hf:ID_OR_PATH")
    p.add_argument("--model", default=d.model, choices=sorted(UNET_CONFIGS), help="network size (see networks.UNET_CONFIGS)")
    p.add_argument("--num-classes", type=nonneg_int, default=None, help="class count (default: the dataset's; 0 = unconditional)")
    add_train_args(p, d, unit="images")
    p.add_argument("--no-hflip", dest="hflip", action="store_false", help="disable random horizontal flips")
    p.add_argument("--sample-steps", type=positive_int, default=d.sample_steps, help="ODE steps of the sample grids")
    p.add_argument("--skip-corrupt", action="store_true", help="skip (and count) unreadable images instead of stopping")
    p.add_argument("--num-images", type=positive_int, default=None, help="train on N images spread evenly over the dataset (default: all)")
    p.add_argument("--init-from", default=None, help="fine-tune: start from this exported backbone dir (same --model, family, classes)")
    p.add_argument("--focus-quantile", type=open_probability, default=d.focus_quantile,
                   help="low-noise quantile of the family's noise-level distribution that --focus-fraction draws from")
    p.add_argument("--focus-fraction", type=probability, default=d.focus_fraction,
                   help="share of each batch whose noise level comes from the lowest --focus-quantile (0 = off)")
    p.add_argument("--ect-halvings", type=nonneg_float, default=d.ect_halvings,
                   help="consistency training only: Δt/t shrinks by 2^-H from the start to --max-steps "
                        "(ECT's schedule uses 8; fewer keeps larger steps on a short budget)")
    p.add_argument("--export-checkpoint", default=None, metavar="latest|DIR",
                   help="no training: write the EMA weights of this checkpoint of --results-dir as a backbone "
                        "(backbone.safetensors + backbone.json; evaluate a run while it trains, e.g. a scaling curve)")
    p.add_argument("--export-dir", default=None, help="where --export-checkpoint writes (default: RUN/export/step_N)")
    cfg = BackboneTrainConfig(**vars(p.parse_args(argv)))
    if not 0.0 < cfg.focus_quantile <= 1.0 or not 0.0 <= cfg.focus_fraction <= 1.0:
        p.error(f"--focus-quantile must be in (0, 1] and --focus-fraction in [0, 1]; got {cfg.focus_quantile}, "
                f"{cfg.focus_fraction}")
    return cfg


def make_family(name: str) -> Family:
    """The family of a ``--family`` name (``vp`` is DDPM's linear β schedule with T = 1000)."""
    return Family(FAMILY_OF[name])


def diffusion_loss(backbone: NetworkBackbone, x: torch.Tensor, y, gen: torch.Generator | None = None,
                   focus_quantile: float = 1.0, focus_fraction: float = 0.0) -> torch.Tensor:
    """One Monte-Carlo estimate of the family's training loss (``Family.loss``) on a batch of clean
    latents x at times from ``Family.training_times``.

    With ``focus_fraction`` > 0, that share of the batch draws its noise level from the lowest
    ``focus_quantile`` of the same distribution (the other draws are unchanged, so 0 is the
    plain loss, sample for sample)."""
    fam = backbone.family
    B, dev = x.shape[0], x.device
    eps = torch.randn(x.shape, generator=gen, device="cpu").to(dev)
    u = torch.rand(B, generator=gen, device="cpu")
    z = torch.randn(B, generator=gen) if fam.normal_training_times else None
    t = fam.training_times(u, z)
    if focus_fraction > 0:
        q = torch.rand(B, generator=gen) * focus_quantile              # a uniform quantile in [0, Q)
        zq = torch.special.ndtri(q.double().clamp_min(1e-12)).float()   # the normal with that quantile
        chosen = torch.rand(B, generator=gen) < focus_fraction
        t = torch.where(chosen, fam.training_times(q, zq), t)
    s = broadcast_time(fam.s(t), x)
    S = broadcast_time(fam.S(t), x)
    o = backbone.raw(s * x + S * eps, t, y)
    return fam.loss(o, x, eps, t, backbone.sigma_data)


def training_loss(backbone: NetworkBackbone, x, y, gen, cfg: "BackboneTrainConfig", step: int) -> torch.Tensor:
    """The family's own objective where it has one (consistency training depends on progress),
    else the diffusion loss."""
    fam = backbone.family
    if hasattr(fam, "training_loss"):
        return fam.training_loss(backbone, x, y, gen, step, cfg.max_steps, cfg.ect_halvings)
    return diffusion_loss(backbone, x, y, gen, cfg.focus_quantile, cfg.focus_fraction)


@torch.no_grad()
def sample_grid(backbone, autoencoder, num_classes: int, steps: int, seed: int, path: Path, per_class: int = 8):
    """A class-conditional grid (rows = classes) from the backbone's own sampler (``chain.own_sample``)."""
    from .data import save_image_grid
    n_cls = max(num_classes, 1)
    y = torch.arange(n_cls).repeat_interleave(per_class) if num_classes else None
    B = n_cls * per_class
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(B, *backbone.latent_shape, generator=g)
    x = own_sample(backbone, noise, steps, y, [torch.Generator().manual_seed(seed * 100003 + i) for i in range(B)])
    save_image_grid(autoencoder.decode(x), path, nrow=per_class)


def cache_latents(dataset, autoencoder, path: Path, hflip: bool, logger, batch_size: int = 256):
    """Encode the whole dataset once (and its mirror images when hflip) into a fp16 tensor file."""
    if path.exists():
        d = torch.load(path, weights_only=True)
        logger.info(f"latent cache: {path} ({len(d['labels'])} entries)")
        return d["latents"], d["labels"], d.get("flipped")
    lat, flp, labs = [], [], []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for imgs, ys in tqdm(loader, desc="encoding dataset", leave=False):
        lat.append(autoencoder.encode(imgs).half())
        if hflip and autoencoder.name != "pixels":
            flp.append(autoencoder.encode(imgs.flip(-1)).half())
        labs.append(torch.as_tensor(ys))
    d = {"latents": torch.cat(lat), "labels": torch.cat(labs), "flipped": torch.cat(flp) if flp else None}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(d, tmp)
    tmp.replace(path)
    logger.info(f"latent cache written: {path} {tuple(d['latents'].shape)}")
    return d["latents"], d["labels"], d["flipped"]


def init_network(net: UNet, net_cfg: UNetConfig, source: str, family: Family, src: NetworkBackbone | None = None):
    """Copy an exported backbone's weights into ``net`` (fine-tuning); refuse another network or family.
    ``src``: the backbone at ``source`` if already loaded."""
    from .backbones import load_network_backbone
    src = src or load_network_backbone(source)
    if src.net.cfg.to_json() != net_cfg.to_json():
        raise ValueError(f"--init-from {source}: its network {src.net.cfg.to_json()} is not this run's {net_cfg.to_json()}; "
                         "pass the --model (and class count) it was trained with")
    if src.family.name not in INIT_FROM_FAMILIES.get(family.name, (family.name,)):
        raise ValueError(f"--init-from {source}: it is a {src.family.name} backbone, this run trains {family.name}; "
                         "pass the --family it was trained with")
    net.load_state_dict(src.net.state_dict())


def images_seen_before(init_from: str | None) -> int | None:
    """Training images behind an --init-from backbone (its own total, so a chain of fine-tunes adds up):
    0 for a run from scratch, None when the source records no count or is no longer readable."""
    if not init_from:
        return 0
    try:
        meta = json.loads((Path(init_from) / "backbone.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    seen = meta.get("images_seen_total", meta.get("images_seen"))
    return int(seen) if seen is not None else None


def seen_meta(rd: Path, cfg: "BackboneTrainConfig", step: int) -> dict:
    """An export's image counts: ``images_seen`` by this run, ``images_seen_total`` with its --init-from
    source's (as the run recorded it when it started; where known)."""
    try:
        resolved = json.loads((Path(rd) / "config.json").read_text())["resolved"]
    except (OSError, json.JSONDecodeError, KeyError):
        resolved = {}
    before = resolved["init_images_seen"] if "init_images_seen" in resolved else images_seen_before(cfg.init_from)
    seen = step * cfg.global_batch_size
    return {"images_seen": seen, **({"images_seen_total": before + seen} if before is not None else {})}


def resolve_train_precision(cfg: BackboneTrainConfig, device) -> Precision:
    """``--mixed-precision`` for this run; the CPU probe is one forward+backward of the U-Net at
    its training shape (a batch of up to 32)."""
    from .autoencoders import load_autoencoder
    shape = load_autoencoder(cfg.autoencoder, device="cpu").latent_shape(cfg.image_size)
    net_cfg = UNetConfig(**{**UNET_CONFIGS[cfg.model], "in_channels": shape[0], "image_size": shape[1],
                            "num_classes": cfg.num_classes or 10})
    batch = min(32, cfg.global_batch_size)
    net = None

    def probe(dtype):
        nonlocal net
        net = net or UNet(net_cfg).to(device)
        x = torch.randn(batch, *shape, device=device)
        with torch.autocast(torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = net(x, torch.full((batch,), 500.0, device=device), torch.zeros(batch, dtype=torch.long, device=device))
        out.float().square().mean().backward()
        net.zero_grad(set_to_none=True)

    return resolve_precision(cfg.mixed_precision, device, probe, f"unet-train:{cfg.model}:{tuple(shape)}:{batch}")


def train(cfg: BackboneTrainConfig):
    from .autoencoders import load_autoencoder
    from .data import balanced_indices, build_dataset

    if cfg.model not in UNET_CONFIGS:
        raise ValueError(f"unknown --model {cfg.model!r}; choose one of {', '.join(UNET_CONFIGS)}")
    init_src = None
    if cfg.init_from:                                           # checked before the run folder exists
        from .backbones import load_network_backbone
        init_src = load_network_backbone(cfg.init_from)          # a missing/corrupt --init-from fails here
        arch = {k: v for k, v in UNET_CONFIGS[cfg.model].items()}
        theirs = {k: v for k, v in init_src.net.cfg.to_json().items() if k in arch}
        if json.loads(json.dumps(arch)) != json.loads(json.dumps(theirs)):
            raise ValueError(f"--init-from {cfg.init_from}: its network {theirs} is not --model {cfg.model} ({arch}); "
                             "pass the --model it was trained with")
        target = make_family(cfg.family).name
        if init_src.family.name not in INIT_FROM_FAMILIES.get(target, (target,)):
            raise ValueError(f"--init-from {cfg.init_from}: it is a {init_src.family.name} backbone, this run trains "
                             f"{make_family(cfg.family).name}; pass the --family it was trained with")
    dataset = build_dataset(cfg.data_path, cfg.image_size, hflip=False, skip_corrupt=cfg.skip_corrupt)  # lists only
    num_classes = dataset.num_classes if cfg.num_classes is None else cfg.num_classes
    precision = resolve_train_precision(cfg, training_device())
    accelerator, rd, logger, micro = start_run(cfg, precision)
    world = accelerator.num_processes
    ckpt = find_checkpoint(rd, cfg.resume_from_checkpoint)      # validate before any expensive work
    autoencoder = load_autoencoder(cfg.autoencoder, device=accelerator.device)
    subset = ""
    if cfg.num_images is not None and cfg.num_images < len(dataset):
        idx = balanced_indices(len(dataset), cfg.num_images)
        dataset = torch.utils.data.Subset(dataset, idx)
        subset = f"-n{cfg.num_images}"
    cache = rd / f"latents-{autoencoder.name.replace(':', '_').replace('/', '_')}-{cfg.image_size}{subset}.pt"
    if accelerator.is_main_process:
        cache_latents(dataset, autoencoder, cache, cfg.hflip, logger)
    accelerator.wait_for_everyone()
    latents, labels, flipped = cache_latents(dataset, autoencoder, cache, cfg.hflip, logger)
    latent_shape = tuple(latents.shape[1:])
    restart_run_clock()                 # time limits count training, not the one-off encoding of the data

    family = make_family(cfg.family)
    net_cfg = UNetConfig(**{**UNET_CONFIGS[cfg.model], "in_channels": latent_shape[0],
                            "image_size": latent_shape[1], "num_classes": num_classes})
    net = UNet(net_cfg)
    if cfg.init_from:
        init_network(net, net_cfg, cfg.init_from, family, init_src)
    data_std = float(latents.float().std())
    backbone = NetworkBackbone(net, family, sigma_data=0.5 if cfg.autoencoder == "pixels" else round(data_std, 3))
    ema = EMA(net, cfg.ema_decay)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    net, opt = accelerator.prepare(net, opt)
    accelerator.register_for_checkpointing(ema)
    backbone.net = net

    if accelerator.is_main_process:
        write_json_atomic(rd / "config.json", {**asdict(cfg), "resolved": {
            "family": family.to_json(), "network": net_cfg.to_json(), "latent_shape": latent_shape,
            "autoencoder": autoencoder.identity(), "num_images": len(latents), "num_processes": world,
            "micro_batch": micro, "data_std": data_std, "precision": precision.to_json(),
            "parameters": sum(p.numel() for p in net.parameters()),
            "init_images_seen": images_seen_before(cfg.init_from)}})
        logger.info(f"{family.name} {cfg.model}: {sum(p.numel() for p in net.parameters())/1e6:.2f}M params, "
                    f"{len(latents)} images {latent_shape}, {world} process(es), micro-batch {micro}; "
                    f"precision {precision.mode} ({precision.reason})")

    step = 0
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
        logger.info(f"resumed from {ckpt} at step {step}")
    log_start = step

    n = len(latents)
    steps_per_epoch = max(1, n // cfg.global_batch_size)
    loss_gen = torch.Generator()
    running, t0, seen = 0.0, time.time(), 0
    pbar = tqdm(total=cfg.max_steps, initial=step, disable=not accelerator.is_main_process, desc="train")
    net.train()
    while step < cfg.max_steps:
        # noise, times, flips and label drops are a function of (seed, rank, step): a resumed run
        # draws exactly what the uninterrupted run would have
        loss_gen.manual_seed(cfg.global_seed * 7919 + accelerator.process_index + 1000003 * step)
        epoch, k = divmod(step, steps_per_epoch)
        perm = epoch_permutation(n, cfg.global_seed, epoch)
        gidx = perm[k * cfg.global_batch_size:(k + 1) * cfg.global_batch_size]
        mine = gidx[accelerator.process_index::world]
        for m in range(cfg.grad_accum):
            idx = mine[m * micro:(m + 1) * micro]
            x = latents[idx].float()
            if cfg.hflip:
                flip = torch.rand(len(idx), generator=loss_gen) < 0.5
                if flipped is not None:
                    x = torch.where(flip[:, None, None, None], flipped[idx].float(), x)
                else:
                    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            y = labels[idx].long()
            if num_classes:
                y = drop_labels(y, num_classes, cfg.label_dropout, loss_gen)
            else:
                y = None
            x = x.to(accelerator.device)
            y = y.to(accelerator.device) if y is not None else None
            with accelerator.accumulate(net):
                with accelerator.autocast():
                    loss = training_loss(backbone, x, y, loss_gen, cfg, step)
                backward_and_step(accelerator, net, opt, loss, cfg, step)
            running += loss.item() / cfg.grad_accum
        ema.update(accelerator.unwrap_model(net))
        step += 1
        seen += cfg.global_batch_size
        pbar.update(1)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            avg = accelerator.reduce(torch.tensor(running / (step - log_start), device=accelerator.device), "mean").item()
            dt = time.time() - t0
            logger.info(f"step {step:07d} loss {avg:.5f} lr {opt.param_groups[0]['lr']:.2e} "
                        f"{seen / dt:.1f} img/s")
            pbar.set_postfix(loss=f"{avg:.4f}")
            running, t0, seen, log_start = 0.0, time.time(), 0, step
        if accelerator.is_main_process and cfg.sample_every and step % cfg.sample_every == 0 and step < cfg.max_steps:
            export_ema(cfg, backbone, ema, net, accelerator, autoencoder, family, step, rd, logger, precision, grid_only=True)
        if checkpoint_or_stop(accelerator, rd, step, cfg, logger, epoch=epoch):
            pbar.close()
            accelerator.end_training()
            return
    pbar.close()
    if accelerator.is_main_process:
        export_ema(cfg, backbone, ema, net, accelerator, autoencoder, family, step, rd, logger, precision)
    accelerator.wait_for_everyone()
    accelerator.end_training()


def export_ema(cfg, backbone, ema, net, accelerator, autoencoder, family, step, rd, logger, precision: Precision,
               grid_only=False):
    """Write a sample grid from the EMA weights (and, at the end, backbone.safetensors/json)."""
    raw = accelerator.unwrap_model(net)
    eval_net = UNet(raw.cfg)
    eval_net.load_state_dict(raw.state_dict())
    ema.copy_to(eval_net)
    bb = NetworkBackbone(eval_net.eval(), family, sigma_data=backbone.sigma_data, name="rdpm-unet")
    bb.clip_sample = 1.0 if cfg.autoencoder == "pixels" else None
    bb.autocast_dtype = precision.dtype
    sample_grid(bb, autoencoder, eval_net.cfg.num_classes, cfg.sample_steps, cfg.global_seed,
                rd / "samples" / f"step_{step:07d}.png")
    if grid_only:
        return
    bb.autocast_dtype = None
    bb.save(rd, extra={"autoencoder": autoencoder.identity(), "autoencoder_spec": cfg.autoencoder,
                       "data": {"path": cfg.data_path, "image_size": cfg.image_size},
                       "steps": step, **seen_meta(rd, cfg, step),
                       "model": cfg.model, "train_config": asdict(cfg)})
    logger.info(f"exported {rd / 'backbone.safetensors'} (EMA, fp16) and backbone.json at step {step}")


def export_checkpoint(results_dir, spec: str = "latest", out_dir=None) -> Path:
    """Write the EMA weights of a checkpoint of a run as an exported backbone (what the run would
    export had it ended there), without the autoencoder or the data. Returns the export folder."""
    from dataclasses import fields
    rd = Path(results_dir)
    try:
        conf = json.loads((rd / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FileNotFoundError(f"{rd / 'config.json'}: not readable ({e}); pass the --results-dir of an "
                                "rdpm-train-backbone run") from None
    ckpt = find_checkpoint(rd, spec)
    if ckpt is None:
        raise FileNotFoundError(f"{rd}: no complete checkpoint to export yet; train first")
    resolved = conf["resolved"]
    cfg = BackboneTrainConfig(**{f.name: conf[f.name] for f in fields(BackboneTrainConfig) if f.name in conf})
    step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
    net = UNet(UNetConfig.from_json(resolved["network"]))
    ema = EMA(net, cfg.ema_decay)
    ema.load_state_dict(torch.load(ckpt / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=True))
    ema.copy_to(net)
    sigma_data = 0.5 if cfg.autoencoder == "pixels" else round(resolved["data_std"], 3)
    bb = NetworkBackbone(net.eval(), make_family(cfg.family), sigma_data=sigma_data, name="rdpm-unet")
    bb.clip_sample = 1.0 if cfg.autoencoder == "pixels" else None
    out = Path(out_dir) if out_dir else rd / "export" / ckpt.name
    bb.save(out, extra={"autoencoder": resolved["autoencoder"], "autoencoder_spec": cfg.autoencoder,
                        "data": {"path": cfg.data_path, "image_size": cfg.image_size}, "steps": step,
                        **seen_meta(rd, cfg, step), "model": cfg.model,
                        "train_config": {k: v for k, v in asdict(cfg).items()
                                         if k not in ("export_checkpoint", "export_dir")}})
    return out


def main(argv=None):
    from .cli import run_command
    cfg = parse_args(argv)
    if cfg.export_checkpoint:
        return run_command("rdpm-train-backbone", lambda: print(
            f"exported {export_checkpoint(cfg.results_dir, cfg.export_checkpoint, cfg.export_dir)}"))
    return run_command("rdpm-train-backbone",
                       lambda: new_run_or_nothing(cfg.results_dir, lambda: with_run_state(cfg, train)))


if __name__ == "__main__":
    main()
