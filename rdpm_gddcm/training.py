"""Training plumbing shared by ``rdpm-train-backbone`` and ``rdpm-train``: run directories, EMA,
checkpoint discovery, resumable data order, and logging. Kept small and explicit, DiT-style."""
from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .files import write_json_atomic  # noqa: F401  (re-exported for the trainers)
from .cli import nonneg_float, nonneg_int, positive_float, positive_int, probability
from .precision import CHOICES, HELP as PRECISION_HELP, Precision


@dataclass
class TrainConfig:
    """Run, optimisation and checkpointing knobs shared by both trainers (each subclass sets its
    own defaults and adds its own fields)."""

    results_dir: str = "results/run"
    max_steps: int = 10000
    global_batch_size: int = 64
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    mixed_precision: str = "auto"
    global_seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000
    sample_every: int = 2000
    keep_checkpoints: int = 2
    resume_from_checkpoint: str | None = None
    stop_at_step: int | None = None
    stop_after_minutes: float | None = None
    stop_after_cpu_minutes: float | None = None
    run_state: str | None = None         # small committable copy of the newest checkpoint (runs over several sessions)


def add_train_args(p: argparse.ArgumentParser, d: TrainConfig, unit: str = "examples"):
    """The shared flags, with ``d``'s defaults (DiT/accelerate conventions)."""
    p.add_argument("--results-dir", default=d.results_dir, help="run directory (config.json, log.txt, checkpoints, exports)")
    p.add_argument("--max-steps", type=positive_int, default=d.max_steps, help="optimizer steps")
    p.add_argument("--global-batch-size", type=positive_int, default=d.global_batch_size, help=f"{unit} per optimizer step over all processes")
    p.add_argument("--grad-accum", type=positive_int, default=d.grad_accum, help="gradient accumulation micro-steps per optimizer step")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="peak AdamW learning rate (warm-up then cosine)")
    p.add_argument("--warmup-steps", type=nonneg_int, default=d.warmup_steps)
    p.add_argument("--weight-decay", type=nonneg_float, default=d.weight_decay)
    p.add_argument("--max-grad-norm", type=nonneg_float, default=d.max_grad_norm, help="gradient clipping (0 = off)")
    p.add_argument("--ema-decay", type=probability, default=d.ema_decay)
    p.add_argument("--label-dropout", type=probability, default=d.label_dropout, help="probability of the null class (for CFG)")
    p.add_argument("--mixed-precision", default=d.mixed_precision, choices=CHOICES,
                   help=f"{PRECISION_HELP} (the probe is one training step of this model)")
    p.add_argument("--global-seed", type=int, default=d.global_seed)
    p.add_argument("--log-every", type=positive_int, default=d.log_every)
    p.add_argument("--ckpt-every", type=positive_int, default=d.ckpt_every)
    p.add_argument("--sample-every", type=nonneg_int, default=d.sample_every, help="sample-grid period in steps (0 = only at the end)")
    p.add_argument("--keep-checkpoints", type=positive_int, default=d.keep_checkpoints)
    p.add_argument("--resume-from-checkpoint", default=None, help="'latest' or a checkpoints/step_N directory")
    p.add_argument("--stop-at-step", type=positive_int, default=None,
                   help="save a checkpoint and exit at this step without exporting (resume later with "
                        "--resume-from-checkpoint latest; the LR schedule still follows --max-steps)")
    p.add_argument("--stop-after-minutes", type=positive_float, default=None,
                   help="like --stop-at-step, at the first step after this much wall time in this process (for "
                        "background runs spread over several sessions)")
    p.add_argument("--stop-after-cpu-minutes", type=positive_float, default=None,
                   help="like --stop-after-minutes, counting this process's CPU time (all its threads): pilots at "
                        "equal compute on a shared machine")
    p.add_argument("--run-state", default=None, metavar="DIR",
                   help="runs over several sessions or machines: resume from this packed state when --results-dir has "
                        "no checkpoint, and pack the newest checkpoint into it whenever training stops (fp32 weights "
                        "and EMA, bf16 Adam moments: small enough to commit)")


class EMA(torch.nn.Module):
    """Exponential moving average of a model's parameters (and copies of its buffers).
    An ``nn.Module`` so ``accelerator.register_for_checkpointing`` saves and restores it."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.shadow = torch.nn.ParameterDict()
        for name, p in model.named_parameters():
            self.shadow[name.replace(".", "__")] = torch.nn.Parameter(p.detach().clone().float(), requires_grad=False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: torch.nn.Module):
        self.num_updates += 1
        # warm-up as in EMA of ADM/DiT reimplementations: short runs are not dominated by init
        d = min(self.decay, (1 + self.num_updates.item()) / (10 + self.num_updates.item()))
        for name, p in model.named_parameters():
            self.shadow[name.replace(".", "__")].lerp_(p.detach().float(), 1 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module):
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name.replace(".", "__")].to(p.dtype))


def drop_labels(y: torch.Tensor, num_classes: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Classifier-free guidance training: each label becomes the null class ``num_classes`` with
    probability ``rate`` (one uniform draw per label from ``gen``, so resumed runs drop the same)."""
    drop = torch.rand(len(y), generator=gen) < rate
    return torch.where(drop, torch.full_like(y, num_classes), y)


def setup_logger(results_dir: Path, is_main: bool) -> logging.Logger:
    logger = logging.getLogger(f"rdpm.{results_dir}")
    logger.handlers.clear()
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    if is_main:
        fmt = logging.Formatter("[%(asctime)s] %(message)s", "%Y-%m-%d %H:%M:%S")
        for h in (logging.StreamHandler(), logging.FileHandler(results_dir / "log.txt")):
            h.setFormatter(fmt)
            logger.addHandler(h)
    else:
        logger.addHandler(logging.NullHandler())
    return logger


def find_checkpoint(results_dir: Path, spec: str | None) -> Path | None:
    """``latest`` → the newest ``checkpoints/step_*`` (None if there is none); else a path."""
    if not spec:
        return None
    if spec == "latest":
        ckpts = sorted((results_dir / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
        ckpts = [c for c in ckpts if (c / "trainer_state.json").exists()]
        return ckpts[-1] if ckpts else None
    p = Path(spec)
    if not (p / "trainer_state.json").exists():
        raise FileNotFoundError(f"--resume-from-checkpoint {spec}: no trainer_state.json there; pass a "
                                "checkpoints/step_N directory or 'latest'")
    return p


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: a function of (seed, epoch) only, so a resumed run sees
    exactly the batches the uninterrupted run would have seen."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    return torch.randperm(n, generator=g)


def cosine_lr(step: int, base_lr: float, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if total <= warmup:
        return base_lr
    prog = min(1.0, (step - warmup) / (total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * prog)))


def training_device() -> torch.device:
    """The device ``start_run``'s Accelerator will train on (known before it exists, so the
    precision can be resolved first)."""
    from accelerate import PartialState
    return PartialState(cpu=not torch.cuda.is_available()).device


_RUN_START: dict = {}


def new_run_or_nothing(results_dir, body):
    """Run a trainer's ``body``; if it fails before its first checkpoint in a run folder that it
    created, remove that folder (bad input must leave nothing behind; a resumed or checkpointed
    run keeps everything)."""
    import shutil
    rd = Path(results_dir)
    existed = rd.exists()
    try:
        return body()
    except BaseException:
        if not existed and rd.is_dir() and find_checkpoint(rd, "latest") is None:
            shutil.rmtree(rd, ignore_errors=True)
        raise


def restart_run_clock():
    """Start the --stop-after-(cpu-)minutes clocks now (after one-off set-up such as encoding the data)."""
    import time
    _RUN_START["t"], _RUN_START["cpu"] = time.time(), time.process_time()


def start_run(cfg, precision: Precision):
    """The common start of a training run (both trainers): an Accelerator in the resolved
    ``precision``, the run directory with checkpoints/ and samples/, the logger, per-process
    seeding, and the per-process micro-batch.
    ``cfg`` needs results_dir, grad_accum, global_seed, global_batch_size."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, precision.mode):
        # an earlier run in this process (library use, tests) fixed another precision: accelerate
        # keeps one per process, so start this run's state afresh (the process group is kept)
        AcceleratorState._reset_state(reset_partial_state=False)
    restart_run_clock()
    accelerator = Accelerator(mixed_precision=precision.mode, gradient_accumulation_steps=cfg.grad_accum,
                              cpu=not torch.cuda.is_available())
    rd = Path(cfg.results_dir)
    if accelerator.is_main_process:
        (rd / "checkpoints").mkdir(parents=True, exist_ok=True)
        (rd / "samples").mkdir(exist_ok=True)
    accelerator.wait_for_everyone()
    logger = setup_logger(rd, accelerator.is_main_process)
    set_seed(cfg.global_seed + accelerator.process_index)
    world = accelerator.num_processes
    if cfg.global_batch_size % (world * cfg.grad_accum):
        raise ValueError(f"--global-batch-size {cfg.global_batch_size} must be divisible by processes×grad-accum "
                         f"= {world}×{cfg.grad_accum}")
    return accelerator, rd, logger, cfg.global_batch_size // (world * cfg.grad_accum)


def save_checkpoint(accelerator, rd: Path, step: int, keep: int, **state):
    """accelerate state (model, optimizer, EMA, RNG) + trainer_state.json, written last: a
    checkpoint without it is incomplete and ignored by 'latest'. Keeps the newest ``keep``."""
    import shutil
    out = rd / "checkpoints" / f"step_{step:07d}"
    accelerator.save_state(str(out))
    if accelerator.is_main_process:
        write_json_atomic(out / "trainer_state.json", {"step": step, **state})
        for old in sorted((rd / "checkpoints").glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def backward_and_step(accelerator, model, opt, loss, cfg: TrainConfig, step: int):
    """One micro-step inside ``accelerator.accumulate(model)``: backward, gradient clipping when
    gradients sync, warm-up + cosine LR (to 10 % of the peak), optimizer step (a no-op on
    accumulation micro-steps under accelerate), zero grads."""
    accelerator.backward(loss)
    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    for gr in opt.param_groups:
        gr["lr"] = cosine_lr(step, cfg.lr, cfg.warmup_steps, cfg.max_steps, 0.1)
    opt.step()
    opt.zero_grad(set_to_none=True)


def checkpoint_or_stop(accelerator, rd: Path, step: int, cfg: TrainConfig, logger, **state) -> bool:
    """End of an optimizer step: checkpoint every ``ckpt_every`` steps and at the last one; with
    ``--stop-at-step``, make sure a checkpoint exists and return True (the caller exits)."""
    import time
    saved = step % cfg.ckpt_every == 0 or step == cfg.max_steps
    if saved:
        save_checkpoint(accelerator, rd, step, cfg.keep_checkpoints, **state)
    why = None
    if cfg.stop_at_step is not None and cfg.stop_at_step <= step < cfg.max_steps:
        why = "--stop-at-step"
    elif (cfg.stop_after_minutes or cfg.stop_after_cpu_minutes) and step < cfg.max_steps:
        over = bool(cfg.stop_after_minutes) and time.time() - _RUN_START.get("t", time.time()) > 60 * cfg.stop_after_minutes
        over = over or (bool(cfg.stop_after_cpu_minutes)
                        and time.process_time() - _RUN_START.get("cpu", 0.0) > 60 * cfg.stop_after_cpu_minutes)
        # every process must take the same decision, or the others would wait forever in a collective
        if accelerator.reduce(torch.tensor(float(over), device=accelerator.device), "max").item() > 0:
            why = "the --stop-after-(cpu-)minutes limit"
    if why:
        if not saved:
            save_checkpoint(accelerator, rd, step, cfg.keep_checkpoints, **state)
        logger.info(f"stopping at step {step} ({why}); resume with --resume-from-checkpoint latest")
        return True
    return False


# ------------------------------------------------------------------------------------------ compact run state
RUN_STATE_FILES = ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "run_state.json")


def pack_run_state(results_dir, out_dir, spec: str = "latest", moments_dtype=torch.bfloat16) -> Path:
    """A small, committable copy of a checkpoint, to continue a long run on another machine or in a
    later session: model and EMA in fp32, Adam's moments in ``moments_dtype`` (bf16 halves them;
    the continued run then differs from an uninterrupted one by that rounding only), the RNG states,
    the trainer state and the run's config.json. ``unpack_run_state`` turns it back into a
    checkpoint that ``--resume-from-checkpoint latest`` resumes."""
    import json
    import pickle
    import shutil

    from safetensors.torch import save_file

    from .files import atomic_path
    rd = Path(results_dir)
    ckpt = find_checkpoint(rd, spec)
    if ckpt is None:
        raise FileNotFoundError(f"{rd}: no complete checkpoint to pack")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        shutil.copyfile(ckpt / "model.safetensors", tmp)
    ema = torch.load(ckpt / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=True)
    with atomic_path(out / "ema.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp))
    opt = torch.load(ckpt / "optimizer.bin", map_location="cpu", weights_only=True)
    tensors, scalars = {}, {}
    for pid, st in opt["state"].items():
        for k, v in st.items():
            if k == "step":
                scalars[str(pid)] = float(v)
            else:
                tensors[f"{pid}.{k}"] = v.to(moments_dtype).contiguous()
    with atomic_path(out / "optimizer.safetensors") as tmp:
        save_file(tensors, str(tmp))
    state = {"checkpoint": ckpt.name, "trainer_state": json.loads((ckpt / "trainer_state.json").read_text()),
             "optimizer_param_groups": opt["param_groups"], "optimizer_steps": scalars,
             "moments_dtype": str(moments_dtype).replace("torch.", ""),
             # one RNG state per process (random_states_<rank>.pkl), so a multi-process run resumes as one
             "random_states_per_process": [pickle.dumps(torch.load(f, weights_only=False)).hex() for f in
                                           sorted(ckpt.glob("random_states_*.pkl"),
                                                  key=lambda f: int(f.stem.rsplit("_", 1)[1]))],
             "config": json.loads((rd / "config.json").read_text())}
    with atomic_path(out / "run_state.json") as tmp:
        tmp.write_text(json.dumps(state))
    return out


def unpack_run_state(state_dir, results_dir) -> Path:
    """Rebuild ``RESULTS_DIR/checkpoints/step_N`` (and config.json) from ``pack_run_state``'s folder."""
    import json
    import pickle
    import shutil

    from safetensors.torch import load_file
    src = Path(state_dir)
    missing = [f for f in RUN_STATE_FILES if not (src / f).exists()]
    if missing:
        raise FileNotFoundError(f"{src}: not a packed run state (missing {', '.join(missing)})")
    state = json.loads((src / "run_state.json").read_text())
    rd = Path(results_dir)
    ck = rd / "checkpoints" / state["checkpoint"]
    ck.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "model.safetensors", ck / "model.safetensors")
    torch.save(load_file(str(src / "ema.safetensors")), ck / "custom_checkpoint_0.pkl")
    moments = load_file(str(src / "optimizer.safetensors"))
    opt_state: dict = {}
    for key, v in moments.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v.float()
    for pid, step in state["optimizer_steps"].items():
        opt_state.setdefault(int(pid), {})["step"] = torch.tensor(step)
    torch.save({"state": opt_state, "param_groups": state["optimizer_param_groups"]}, ck / "optimizer.bin")
    # states packed before multi-process runs were supported hold one process's RNG state ("random_states")
    for rank, blob in enumerate(state.get("random_states_per_process") or [state["random_states"]]):
        torch.save(pickle.loads(bytes.fromhex(blob)), ck / f"random_states_{rank}.pkl")
    if not (rd / "config.json").exists():
        (rd / "config.json").write_text(json.dumps(state["config"], indent=2))
    (ck / "trainer_state.json").write_text(json.dumps(state["trainer_state"]))   # last: marks it complete
    return ck


def with_run_state(cfg, train_fn):
    """``train_fn(cfg)``, continued from and saved to ``cfg.run_state`` when given: resume from that packed
    state when the run folder has no checkpoint, pack the newest checkpoint back into it when training returns
    (finished, or stopped by --stop-at-step / --stop-after-minutes). Only the main process packs and unpacks."""
    import os
    rank = int(os.environ.get("RANK", "0"))
    if cfg.run_state:
        rd, state = Path(cfg.results_dir), Path(cfg.run_state)
        if rank == 0 and find_checkpoint(rd, "latest") is None and (state / "run_state.json").exists():
            print(f"unpacked {unpack_run_state(state, rd)} from {state}")
        _wait_for_file_or_checkpoint(rd, state)
        if find_checkpoint(rd, "latest") is not None:
            cfg.resume_from_checkpoint = cfg.resume_from_checkpoint or "latest"
    result = train_fn(cfg)
    if cfg.run_state and rank == 0:
        print(f"packed the newest checkpoint into {pack_run_state(cfg.results_dir, cfg.run_state)}")
    return result


def _wait_for_file_or_checkpoint(rd: Path, state: Path, timeout_s: float = 600.0):
    """Other processes of a multi-process launch wait until the main process has unpacked the state (no
    process group exists yet at this point, so it is a file-system wait)."""
    import time
    if not (state / "run_state.json").exists():
        return
    t0 = time.time()
    while find_checkpoint(rd, "latest") is None and time.time() - t0 < timeout_s:
        time.sleep(0.5)
