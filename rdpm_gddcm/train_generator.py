"""``rdpm-train``: train the RDPM-style generator on gDDCM token shards (SPEC §9).

Each example is (image i, token row m): the input is the chain state before that row and the
backbone's x̂0 there, the target the encoder's token map; loss = cross-entropy over the K
codebook entries of every block. States come from the shards when rdpm-tokenize ran with
--save-states, else they are replayed through the backbone (the same chain, a lookup chooser).
Rows are drawn uniformly, so every step's token map is trained; per-row accuracy is logged.

Runs unchanged from 1 CPU process to many GPUs under ``accelerate launch``; resume restores
model, EMA, optimizer, RNG and data position (the data order is a function of seed and step).
``--init-from DIR`` starts a new run from an exported generator (e.g. a shipped one) trained on
tokens of the same tokenizer: its weights start the model and the EMA; optimizer, LR schedule and
step count start fresh (training longer than a finished cosine schedule).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import cli
from .chain import effective_score
from .cli import nonneg_int, positive_int
from .generator import GENERATOR_CONFIGS, GeneratorConfig, TokenGenerator, count_params, load_generator, save_generator
from .token_io import TokenDataset
from .training import (EMA, TrainConfig, add_train_args, backward_and_step, checkpoint_or_stop, drop_labels,
                       epoch_permutation, find_checkpoint, new_run_or_nothing, start_run, training_device,
                       with_run_state, write_json_atomic)


@dataclass
class GeneratorTrainConfig(TrainConfig):
    tokens: str = ""
    results_dir: str = "results/generator"
    model: str = "gen-xs"
    head: str = "tied"
    head_rank: int | None = None         # tied head's covariance term (generator.py): None = 4 when tied;
                                         # 0 = SPEC §9's linear tied head
    head_isotropic: bool = False         # tied head's isotropic covariance term (generator.py): off, it lowers
                                         # the CE but raised FID (README, Design)
    max_steps: int = 5000
    lr: float = 3e-4
    sample_every: int = 0
    backbone: str | None = None          # for replaying states and for sample grids
    val_tokens: str | None = None        # held-out token shards (e.g. `val` images): CE/accuracy at each export
    autoencoder: str | None = None
    init_from: str | None = None         # exported generator to continue from (same tokenizer and size)
    history_maps: int = 0                # the previous H maps' chosen codebook vectors as input (generator.py)
    two_pass: bool = False               # each map in two checkerboard passes, the second given the first (generator.py)
    map_passes: int = 1                  # P > 1: each map in P masked passes (MaskGIT inside a map; generator.py)


def parse_args(argv=None) -> GeneratorTrainConfig:
    d = GeneratorTrainConfig()
    p = cli.ArgumentParser(prog="rdpm-train", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tokens", required=True, help="token directory written by rdpm-tokenize")
    p.add_argument("--model", default=d.model, choices=sorted(GENERATOR_CONFIGS), help="generator size (DiT-style table)")
    p.add_argument("--head", default=d.head, choices=["tied", "untied"], help="tied to the codebook (default) or a linear head over K")
    p.add_argument("--head-rank", type=nonneg_int, default=d.head_rank,
                   help="tied head: rank of its per-block covariance term; default 4 for the tied head (see the "
                        "README's 'Generator heads' table), 0 = the linear tied head of SPEC §9")
    p.add_argument("--head-isotropic", action=argparse.BooleanOptionalAction, default=d.head_isotropic,
                   help="tied head: add the isotropic covariance term (dot tokens favour long codebook entries): a "
                        "lower cross-entropy but a worse FID on CIFAR-10 (README, Design). --init-from a generator "
                        "without it adds it (starting at zero)")
    p.add_argument("--history-maps", type=nonneg_int, default=d.history_maps,
                   help="feed the model the codebook vectors chosen at each block by the previous H token maps "
                        "(read from the tokens in training, from its own draws in sampling); 0 = SPEC §9's input. "
                        "A lower cross-entropy but no better FID on CIFAR-10 (README, Token history). --init-from a "
                        "generator without it adds it (starting at zero)")
    p.add_argument("--two-pass", action=argparse.BooleanOptionalAction, default=d.two_pass,
                   help="draw each token map in two passes: every block, then one checkerboard half again given the "
                        "other half's chosen codebook vectors (trained by showing half of the true map to half of the "
                        "examples); off = SPEC §9's independent blocks. --init-from a generator without it adds it "
                        "(starting at zero)")
    p.add_argument("--map-passes", type=positive_int, default=d.map_passes,
                   help="P > 1: train the generator to draw each token map in P passes, each keeping its most "
                        "confident blocks and redrawing the others given them (MaskGIT's decoding inside a map: "
                        "trained by showing a random subset of the true map, none to 1/P of the examples); the "
                        "sampling default becomes P passes, and rdpm-sample --map-passes 1 still draws in one. 1 = "
                        "SPEC §9's independent blocks. --init-from a generator without it adds it (starting at zero)")
    add_train_args(p, d, unit="token sequences")
    p.add_argument("--backbone", default=None,
                   help="backbone the tokens were made with: replays states if none are cached, and enables sample grids")
    p.add_argument("--autoencoder", default=None, help="autoencoder for sample grids (default: the backbone's)")
    p.add_argument("--val-tokens", default=None,
                   help="held-out token directory made with the same tokenizer (e.g. CIFAR-10 val): the EMA model's "
                        "cross-entropy and token accuracy per row on it at every export -> val_metrics.json")
    p.add_argument("--init-from", default=None,
                   help="start from this exported generator (generator.json + .safetensors; same tokenizer, "
                        "over any backbone of its family, --model, --head and --head-rank): a new run, with a fresh optimizer and LR schedule")
    return GeneratorTrainConfig(**vars(p.parse_args(argv)))


class RowBatcher:
    """Turns (image indices, row indices) into model inputs, from cached states or by replay."""

    def __init__(self, data: TokenDataset, tokenizer=None):
        self.data, self.tokenizer = data, tokenizer
        self.spec = tokenizer.spec if tokenizer is not None else data.header.chain_spec()
        self.grid, self.K = self.spec.grid, self.spec.codebook_size
        if not data.has_states and tokenizer is None:
            raise ValueError("the token shards hold no cached states (rdpm-tokenize --save-states) and no --backbone "
                             "was given to replay them: pass --backbone DIR")

    def codebook_blocks(self, row: int, device) -> torch.Tensor:
        return self.spec.codebook_blocks(row, device)

    def inputs(self, idx: np.ndarray, rows: np.ndarray, device):
        """(state_blocks, xh_blocks, targets) for images idx at rows ``rows``."""
        L = tuple(self.grid.latent_shape)
        steps = np.array([self.spec.step_of_row(int(r)) for r in rows], dtype=np.int64)   # INIT_STEP: the init row
        s = np.maximum(steps, 0)
        if self.data.has_states:
            st, xh = self.data.states_for(idx, s)         # (B, C, H, W): only the step each example needs
            st = torch.from_numpy(st.astype(np.float32))
            xh = torch.from_numpy(xh.astype(np.float32))
        else:
            from .chain import LookupChooser, run_chain
            tok = self.tokenizer
            # the encoder called the backbone with each image's class when the tokens are --conditional
            labels = torch.from_numpy(self.data.labels[idx]).long().to(device) if tok.cfg.conditional else None
            out = run_chain(tok.backbone, tok.spec, LookupChooser(torch.from_numpy(self.data.tokens[idx])), len(idx),
                            labels, device, record=True, final=False)
            b, si = torch.arange(len(idx)), torch.from_numpy(s)
            st, xh = torch.stack(out.states, 1).cpu()[b, si], torch.stack(out.xhs, 1).cpu()[b, si]
        real = torch.from_numpy(steps >= 0)[:, None, None, None]        # the init row sees a zero state and x̂0
        state = torch.where(real, st, torch.zeros(len(idx), *L))
        xhat = torch.where(real, xh, torch.zeros(len(idx), *L))
        targets = torch.from_numpy(self.data.tokens[idx, rows]).long()
        return (self.grid.to_blocks(state).to(device), self.grid.to_blocks(xhat).to(device), targets.to(device))

    def history(self, idx: np.ndarray, rows: np.ndarray, maps: int, device) -> torch.Tensor | None:
        """The generator's token-history input (generator.token_history) for images idx at rows ``rows``,
        from their stored tokens (teacher forcing); None when ``maps`` = 0."""
        if not maps:
            return None
        from .generator import token_history
        rows = np.asarray(rows)
        tokens = torch.from_numpy(self.data.tokens[idx, :max(int(rows.max()), 1)])
        return token_history(self.spec, tokens, torch.from_numpy(rows), maps).to(device)

    def known(self, rows: np.ndarray, targets: torch.Tensor, shown: torch.Tensor) -> torch.Tensor:
        """A two-pass generator's second-pass input (generator.known_blocks) for examples at rows ``rows``
        whose true tokens ``targets`` (B, G) are shown where ``shown`` (B, G) (teacher forcing)."""
        from .generator import known_blocks
        out = torch.zeros(*targets.shape, self.grid.block_dim + 1, device=targets.device)
        for r in np.unique(rows).tolist():
            sel = torch.from_numpy(rows == r).to(targets.device)
            out[sel] = known_blocks(self.codebook_blocks(r, targets.device), targets[sel], shown[sel])
        return out


def shown_halves(grid, batch: int, g: torch.Generator) -> torch.Tensor:
    """Two-pass training (generator.py): each example shows nothing (a first pass) or, with probability
    1/2, one checkerboard half of its true map, either parity (a second pass) -> (B, G) bool."""
    from .generator import checkerboard
    second = torch.rand(batch, generator=g) < 0.5
    parity = torch.randint(2, (batch,), generator=g)
    boards = torch.stack([checkerboard(grid, 0), checkerboard(grid, 1)])        # (2, G)
    return boards[parity] & second[:, None]


def shown_subsets(num_blocks: int, batch: int, passes: int, g: torch.Generator) -> torch.Tensor:
    """Masked-pass training (generator.py): each example shows nothing with probability 1/P (a first pass),
    else a uniformly random subset of ⌈G·(1 - cos(π/2·u))⌉ of its blocks, u ~ U(0, 1), at most G - 1
    (MaskGIT's cosine schedule) -> (B, G) bool."""
    import math
    first = torch.rand(batch, generator=g) < 1.0 / passes
    u = torch.rand(batch, generator=g)
    n = (num_blocks * (1 - torch.cos(math.pi / 2 * u))).ceil().clamp(1, num_blocks - 1)
    rank = torch.rand(batch, num_blocks, generator=g).argsort(1).argsort(1)       # a random order of the blocks
    return (rank < n[:, None]) & ~first[:, None]


def generator_loss(model, raw: TokenGenerator, batcher: RowBatcher, sb, xb, rows: torch.Tensor, y, targets,
                   history=None, shown=None):
    """Mean CE over blocks. ``model`` may be DDP-wrapped (its forward gives the features); the
    head is applied per row group, each row having its own codebook. A generator with the known-blocks input
    (two-pass, masked passes) is shown the true tokens where ``shown`` (B, G) and scored on the other blocks only. Returns (loss, accuracy (B,))."""
    known = batcher.known(rows.cpu().numpy(), targets, shown) if shown is not None else None
    feats = model(sb, xb, rows, y, history, known).float()
    scored = torch.ones_like(targets, dtype=torch.bool) if shown is None else ~shown
    loss = feats.new_zeros(())
    correct = torch.zeros(len(rows), device=feats.device)
    for r in rows.unique().tolist():
        sel = rows == r
        cb = batcher.codebook_blocks(r, feats.device) if raw.cfg.head == "tied" else None
        logits = raw.head_logits(feats[sel], cb)
        ce = F.cross_entropy(logits.flatten(0, 1), targets[sel].flatten(), reduction="none").view(targets[sel].shape)
        loss = loss + (ce * scored[sel]).sum()
        hit = (logits.argmax(-1) == targets[sel]).float() * scored[sel]
        correct[sel] = hit.sum(-1) / scored[sel].sum(-1).clamp_min(1)
    return loss / scored.sum().clamp_min(1), correct


@torch.no_grad()
def token_metrics(model: TokenGenerator, data: TokenDataset, batch_size: int = 64, device="cpu",
                  tokenizer=None) -> dict:
    """Mean cross-entropy (nats per token) and top-1 token accuracy of ``model`` on every row of every
    sequence of ``data``, overall and per row (class labels given, as in conditional sampling). For a
    generator with the known-blocks input (two-pass, masked passes) these are its first pass (nothing shown);
    ``*_second_pass`` score it given half of the map: each checkerboard half given the other half's true tokens."""
    from .generator import checkerboard
    batcher = RowBatcher(data, tokenizer)
    R = data.header.num_token_rows
    ce, acc, count = np.zeros(R), np.zeros(R), np.zeros(R)
    ce2, acc2, count2 = np.zeros(R), np.zeros(R), np.zeros(R)
    model.eval()
    for lo in range(0, len(data), batch_size):
        idx = np.arange(lo, min(lo + batch_size, len(data)))
        y = torch.from_numpy(data.labels[idx]).long().to(device)
        for r in range(R):
            rows = np.full(len(idx), r)
            sb, xb, targets = batcher.inputs(idx, rows, device)
            hist = batcher.history(idx, rows, model.cfg.history_maps, device)
            logits = model.head_logits(model(sb, xb, torch.from_numpy(rows).to(device), y, hist),
                                       batcher.codebook_blocks(r, device) if model.cfg.head == "tied" else None)
            ce[r] += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
            acc[r] += (logits.argmax(-1) == targets).sum().item()
            count[r] += targets.numel()
            for parity in range(2 if model.cfg.known_input else 0):
                shown = checkerboard(batcher.grid, parity, device).expand_as(targets)
                known = batcher.known(rows, targets, shown)
                logits = model.head_logits(model(sb, xb, torch.from_numpy(rows).to(device), y, hist, known),
                                           batcher.codebook_blocks(r, device) if model.cfg.head == "tied" else None)
                ce2[r] += F.cross_entropy(logits[~shown], targets[~shown], reduction="sum").item()
                acc2[r] += (logits.argmax(-1) == targets)[~shown].sum().item()
                count2[r] += int((~shown).sum())
    out = {"num_sequences": len(data), "ce": float(ce.sum() / count.sum()), "accuracy": float(acc.sum() / count.sum()),
           "ce_per_row": (ce / count).tolist(), "accuracy_per_row": (acc / count).tolist(),
           "uniform_ce": float(np.log(batcher.K))}
    if model.cfg.known_input:
        out.update({"ce_second_pass": float(ce2.sum() / count2.sum()),
                    "accuracy_second_pass": float(acc2.sum() / count2.sum()),
                    "ce_second_pass_per_row": (ce2 / count2).tolist(),
                    "accuracy_second_pass_per_row": (acc2 / count2).tolist()})
    return out


def train(cfg: GeneratorTrainConfig):
    device = training_device()
    data = TokenDataset(cfg.tokens)
    h = data.header
    tokenizer = None
    if cfg.backbone is not None:
        from .tokenizer import Tokenizer
        # the backbone recomputes the tokens' states: it runs exactly as the encoder did
        tokenizer = Tokenizer.from_header(h, cfg.backbone, cfg.autoencoder, device)
    batcher = RowBatcher(data, tokenizer)
    num_classes = data.manifest.get("num_classes") or int(data.labels.max()) + 1
    gcfg = GeneratorConfig(**{**GENERATOR_CONFIGS[cfg.model], "num_blocks": batcher.grid.num_blocks,
                              "block_dim": batcher.grid.block_dim, "num_rows": h.num_token_rows,
                              "codebook_size": batcher.K, "num_classes": num_classes, "head": cfg.head,
                              "head_rank": (4 if cfg.head == "tied" else 0) if cfg.head_rank is None else cfg.head_rank,
                              "head_isotropic": cfg.head_isotropic, "history_maps": cfg.history_maps,
                              "two_pass": cfg.two_pass, "map_passes": cfg.map_passes,
                              "score": effective_score(h.selection, h.plan["kind"])})
    init = initial_weights(cfg, h, gcfg)                        # checked before the run folder exists
    precision = TokenGenerator(gcfg).resolve_precision(cfg.mixed_precision, device,
                                                       batch=min(32, cfg.global_batch_size), train=True)
    accelerator, rd, logger, micro = start_run(cfg, precision)
    world = accelerator.num_processes
    model = TokenGenerator(gcfg)
    if init is not None:
        model.load_state_dict(init)
    ema = EMA(model, cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    model, opt = accelerator.prepare(model, opt)
    accelerator.register_for_checkpointing(ema)
    raw = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        write_json_atomic(rd / "config.json", {**asdict(cfg), "resolved": {"generator": gcfg.to_json(),
                          "parameters": count_params(raw), "num_images": len(data), "has_states": data.has_states,
                          "num_processes": world, "micro_batch": micro, "tokens_header": h.to_json(),
                          "precision": precision.to_json()}})
        logger.info(f"{cfg.model} ({cfg.head} head): {count_params(raw)/1e6:.2f}M params, {len(data)} token sequences "
                    f"x {h.num_token_rows} rows x {batcher.grid.num_blocks} blocks, K={batcher.K}")
    step = 0
    ckpt = find_checkpoint(rd, cfg.resume_from_checkpoint)
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
        logger.info(f"resumed from {ckpt} at step {step}")

    n, R = len(data), h.num_token_rows
    steps_per_epoch = max(1, n // cfg.global_batch_size)
    run_loss, run_acc = 0.0, np.zeros((2, R))
    t0, seen = time.time(), 0
    pbar = tqdm(total=cfg.max_steps, initial=step, disable=not accelerator.is_main_process, desc="train")
    model.train()
    while step < cfg.max_steps:
        epoch, k = divmod(step, steps_per_epoch)
        gidx = epoch_permutation(n, cfg.global_seed, epoch)[k * cfg.global_batch_size:(k + 1) * cfg.global_batch_size]
        # rows and label drops are a function of (seed, step): resume sees the same examples
        g = torch.Generator().manual_seed(cfg.global_seed * 1000003 + step)
        grows = torch.randint(R, (len(gidx),), generator=g)
        gy = drop_labels(torch.from_numpy(data.labels[gidx.numpy()]).long(), num_classes, cfg.label_dropout, g)
        gshown = shown_halves(batcher.grid, len(gidx), g) if gcfg.two_pass else \
            shown_subsets(batcher.grid.num_blocks, len(gidx), gcfg.map_passes, g) if gcfg.map_passes > 1 else None
        mine = torch.arange(len(gidx))[accelerator.process_index::world]
        for m in range(cfg.grad_accum):
            sel = mine[m * micro:(m + 1) * micro]
            idx, rows = gidx[sel].numpy(), grows[sel].numpy()
            sb, xb, targets = batcher.inputs(idx, rows, accelerator.device)
            hist = batcher.history(idx, rows, gcfg.history_maps, accelerator.device)
            y = gy[sel].to(accelerator.device)
            rows_t = torch.from_numpy(rows).long().to(accelerator.device)
            shown = gshown[sel].to(accelerator.device) if gshown is not None else None
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss, acc = generator_loss(model, raw, batcher, sb, xb, rows_t, y, targets, hist, shown)
                backward_and_step(accelerator, model, opt, loss, cfg, step)
            run_loss += loss.item() / cfg.grad_accum
            np.add.at(run_acc[0], rows, acc.detach().cpu().numpy())
            np.add.at(run_acc[1], rows, 1)
        ema.update(raw)
        step += 1
        seen += cfg.global_batch_size
        pbar.update(1)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            k_log = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            avg = accelerator.reduce(torch.tensor(run_loss / k_log, device=accelerator.device), "mean").item()
            accs = run_acc[0] / np.maximum(run_acc[1], 1)
            logger.info(f"step {step:07d} ce {avg:.4f} acc {np.sum(run_acc[0]) / max(np.sum(run_acc[1]), 1):.4f} "
                        f"per-row acc [{' '.join(f'{a:.3f}' for a in accs)}] {seen / (time.time() - t0):.1f} seq/s")
            pbar.set_postfix(ce=f"{avg:.3f}")
            run_loss, run_acc, t0, seen = 0.0, np.zeros((2, R)), time.time(), 0
        if cfg.sample_every and step % cfg.sample_every == 0 and step < cfg.max_steps and accelerator.is_main_process:
            export(cfg, raw, ema, gcfg, data, rd, step, logger)       # the grid is drawn from the exported EMA
            validate(cfg, rd, step, logger)
            sample_grid(cfg, rd, step, num_classes, logger)
        if checkpoint_or_stop(accelerator, rd, step, cfg, logger):
            pbar.close()
            accelerator.end_training()
            return
    pbar.close()
    if accelerator.is_main_process:
        export(cfg, raw, ema, gcfg, data, rd, step, logger)
        validate(cfg, rd, step, logger)
        sample_grid(cfg, rd, step, num_classes, logger)
    accelerator.wait_for_everyone()
    accelerator.end_training()


def initial_weights(cfg: GeneratorTrainConfig, header, gcfg: GeneratorConfig) -> dict | None:
    """--init-from's weights, after checking they fit this run: tokens of the same tokenizer (the
    header's checked fields; the backbone's weights and precision may differ) and the same generator
    configuration, except that a generator without the isotropic head term, the token history, two passes
    or masked passes may start one with it (their zero-initialised layers: the same function)."""
    if not cfg.init_from:
        return None
    from .header import TokenHeader
    src, meta = load_generator(cfg.init_from)              # a missing generator is a FileNotFoundError naming it
    theirs = TokenHeader.from_json(meta.get("tokens_header"), source=f"--init-from {cfg.init_from}")
    # A token index means the same codebook vector at the same chain step whatever backbone chose it: the
    # codebook, plan, grid, family and autoencoder must match, but the backbone's weights (a fine-tuned
    # backbone: a warm start for its tokens' generator) and precision (only the last bits of the states) may
    # differ. Exact decoding, what those header fields guard, is not at stake in training; the run's own
    # header is the new tokens'.
    diff = header.mismatch(theirs, ignore=TokenHeader.FINE_TUNE_FIELDS)
    if diff is None and header.backbone != theirs.backbone:
        print(f"note: --init-from {cfg.init_from} was trained on the tokens of backbone {theirs.backbone.get('name')} "
              f"({str(theirs.backbone.get('sha256'))[:12]}); continuing on {header.backbone.get('name')}'s tokens")
    if diff is not None:
        raise ValueError(f"--init-from {cfg.init_from}: it was trained on tokens with another {diff[0]} "
                         f"({diff[2]} vs --tokens' {diff[1]}); continue only on tokens of the same tokenizer")
    mine, other = gcfg.to_json(), src.cfg.to_json()
    adds_isotropic = mine["head_isotropic"] and not other["head_isotropic"]
    adds_history = mine["history_maps"] and not other["history_maps"]
    adds_two_pass = mine["two_pass"] and not other.get("two_pass")
    adds_passes = mine["map_passes"] > 1 and other.get("map_passes", 1) == 1 and not other.get("two_pass")
    if adds_isotropic:
        other["head_isotropic"] = True
    if adds_history:
        other["history_maps"] = mine["history_maps"]
    if adds_two_pass:
        other["two_pass"] = True
    other.setdefault("map_passes", 1)
    if adds_passes:
        other["map_passes"] = mine["map_passes"]
    if mine != other:
        what = sorted(k for k in set(mine) | set(other) if mine.get(k) != other.get(k))
        raise ValueError(f"--init-from {cfg.init_from}: its generator differs from this run's in {', '.join(what)}; "
                         "pass the --model, --head, --head-rank, --head-isotropic, --history-maps, --two-pass and "
                         "--map-passes it was trained with")
    adds = adds_isotropic or adds_history or adds_two_pass or adds_passes
    weights = TokenGenerator(gcfg).state_dict() if adds else {}
    return {**weights, **src.state_dict()}


def validate(cfg: GeneratorTrainConfig, rd: Path, step: int, logger):
    """Held-out CE/accuracy of the exported EMA weights (--val-tokens), appended to val_metrics.json."""
    if cfg.val_tokens is None:
        return
    data = TokenDataset(cfg.val_tokens)
    model, meta = load_generator(rd)
    ours, theirs = data.header.to_json(), meta["tokens_header"]
    for key in ("codebook", "backbone", "grid", "plan", "latent_shape", "codebook_sizes", "selection", "init"):
        if ours.get(key) != theirs.get(key):
            raise ValueError(f"--val-tokens {cfg.val_tokens}: its {key} differs from the training tokens'; "
                             "tokenize the held-out images with the same tokenizer settings")
    m = {"step": step, **token_metrics(model, data)}
    path = rd / "val_metrics.json"
    hist = json.loads(path.read_text()) if path.exists() else []
    write_json_atomic(path, [h for h in hist if h["step"] != step] + [m])
    logger.info(f"val step {step:07d} ce {m['ce']:.4f} acc {m['accuracy']:.4f} (uniform ce {m['uniform_ce']:.3f}) "
                f"on {m['num_sequences']} held-out sequences")


def grid_classes(num_classes: int, max_columns: int = 10) -> np.ndarray:
    """The classes of a training sample grid: all of them up to ``max_columns``, else that many spread
    evenly over the label range (ImageNet: 10 of 1000, not a 4000-image grid)."""
    return np.unique(np.linspace(0, num_classes - 1, min(num_classes, max_columns)).round().astype(int))


def sample_grid(cfg: GeneratorTrainConfig, rd: Path, step: int, num_classes: int, logger, per_class: int = 4):
    """A class-conditional grid (one class per column, at most 10 columns) from the exported EMA
    weights, through the real sampler (CFG 2, τ = 1); needs --backbone."""
    if cfg.backbone is None:
        return
    from .data import save_image_grid
    from .sample import Sampler
    s = Sampler(str(rd), cfg.backbone, cfg.autoencoder, device="cpu" if not torch.cuda.is_available() else "cuda")
    classes = grid_classes(num_classes)
    labels = np.tile(classes, per_class)
    imgs, _ = s.sample(np.arange(len(labels)), labels, cfg_scale=2.0, temperature=1.0, global_seed=cfg.global_seed)
    save_image_grid(imgs.cpu(), str(rd / "samples" / f"step_{step:07d}.png"), nrow=len(classes))
    logger.info(f"sample grid: {rd / 'samples' / f'step_{step:07d}.png'}")


def export(cfg, raw, ema, gcfg, data, rd: Path, step: int, logger, dtype=torch.float16):
    """generator.safetensors (EMA weights, fp16) + generator.json (config + tokenizer header)."""
    model = TokenGenerator(gcfg)
    model.load_state_dict(raw.state_dict())
    ema.copy_to(model)
    save_generator(model, rd, {"tokens_header": data.header.to_json(), "steps": step, "backbone": cfg.backbone,
                               "autoencoder": cfg.autoencoder, "classes": data.manifest.get("classes"),
                               "train_config": asdict(cfg)}, dtype)
    logger.info(f"exported {rd / 'generator.safetensors'} (EMA, fp16) at step {step}")




def main(argv=None):
    from .cli import run_command
    cfg = parse_args(argv)
    return run_command("rdpm-train", lambda: new_run_or_nothing(cfg.results_dir, lambda: with_run_state(cfg, train)))


if __name__ == "__main__":
    main()
