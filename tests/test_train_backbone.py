"""``rdpm-train-backbone``: exact resume, export, bad input, and the training signal of
``diffusion_loss`` for every family. Tiny CPU runs (procedural data, unet-tiny, 16×16)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from rdpm_gddcm.backbones import NetworkBackbone, load_backbone
from rdpm_gddcm.families import broadcast_time
from rdpm_gddcm.networks import UNet, UNetConfig
from rdpm_gddcm.train_backbone import FAMILY_OF, diffusion_loss, main, make_family

# --lr/--warmup-steps make the LR schedule (which follows --max-steps) visible within 4 steps; runs are compared
# exactly, so not at `auto` precision, whose timing probe can choose differently per run on a loaded machine
BASE = ("--data-path procedural:64 --image-size 16 --model unet-tiny --family flow --max-steps 4 "
        "--global-batch-size 8 --ckpt-every 2 --sample-every 0 --sample-steps 2 --log-every 1 "
        "--lr 1e-3 --warmup-steps 0 --mixed-precision no").split()
STEP_RE = re.compile(r"step (\d+) loss ([0-9.]+) lr (\S+)")


def _log_steps(run: Path) -> dict:
    """{step: (loss string, lr string)} from a run's log.txt."""
    out = {}
    for line in (run / "log.txt").read_text().splitlines():
        m = STEP_RE.search(line)
        if m:
            out[int(m.group(1))] = (m.group(2), m.group(3))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A: 4 uninterrupted steps. B: the same run stopped after step 2 (``--stop-at-step``, same
    --max-steps so the same LR schedule), then resumed from 'latest' to step 4."""
    root = tmp_path_factory.mktemp("train")
    A, B = root / "A", root / "B"
    main(BASE + ["--results-dir", str(A)])
    main(BASE + ["--results-dir", str(B), "--stop-at-step", "2"])
    leg1 = {"exported": (B / "backbone.safetensors").exists(),
            "ckpts": sorted(p.name for p in (B / "checkpoints").iterdir()),
            "log": _log_steps(B)}
    main(BASE + ["--results-dir", str(B), "--resume-from-checkpoint", "latest"])
    return A, B, leg1


def _ckpt(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step_{step:07d}"


def _model_state(ck: Path) -> dict:
    if (ck / "model.safetensors").exists():
        from safetensors.torch import load_file
        return load_file(str(ck / "model.safetensors"))
    return torch.load(ck / "pytorch_model.bin", weights_only=True)


def _assert_tensor_dicts_close(a: dict, b: dict, what: str, atol=1e-6):
    assert set(a) == set(b), what
    for k in a:
        ta, tb = torch.as_tensor(a[k]), torch.as_tensor(b[k])
        assert ta.shape == tb.shape and torch.allclose(ta.double(), tb.double(), atol=atol, rtol=0), f"{what}: {k}"


def _assert_optimizer_close(a: dict, b: dict):
    assert set(a["state"]) == set(b["state"]) and len(a["state"]) > 0
    for pid in a["state"]:
        _assert_tensor_dicts_close(a["state"][pid], b["state"][pid], f"optimizer state of param {pid}")
    for ga, gb in zip(a["param_groups"], b["param_groups"]):
        assert ga["lr"] == pytest.approx(gb["lr"], rel=1e-12) and ga["params"] == gb["params"]


def test_stop_and_resume_position(runs):
    """The interrupted leg stops at step 2 without exporting, and the resumed leg continues at step 3
    with the 4-step LR schedule; the state at step 2 is the uninterrupted run's state."""
    A, B, leg1 = runs
    assert not leg1["exported"] and leg1["ckpts"] == ["step_0000002"] and sorted(leg1["log"]) == [1, 2]
    assert "resumed from" in (B / "log.txt").read_text() and "step_0000002 at step 2" in (B / "log.txt").read_text()
    la, lb = _log_steps(A), _log_steps(B)
    assert sorted(la) == sorted(lb) == [1, 2, 3, 4]
    assert [la[s][1] for s in la] == [lb[s][1] for s in la]           # same LR at every step
    assert la[1] == lb[1] and la[2] == lb[2]                          # same first leg
    assert json.loads((_ckpt(B, 4) / "trainer_state.json").read_text())["step"] == 4
    ca, cb = _ckpt(A, 2), _ckpt(B, 2)
    _assert_tensor_dicts_close(_model_state(ca), _model_state(cb), "model at step 2", atol=0)
    _assert_optimizer_close(torch.load(ca / "optimizer.bin", weights_only=True),
                            torch.load(cb / "optimizer.bin", weights_only=True))
    _assert_tensor_dicts_close(torch.load(ca / "custom_checkpoint_0.pkl", weights_only=True),
                               torch.load(cb / "custom_checkpoint_0.pkl", weights_only=True), "EMA at step 2", atol=0)


def test_resumed_run_equals_uninterrupted_run(runs):
    A, B, _ = runs
    la, lb = _log_steps(A), _log_steps(B)
    assert la == lb, f"loss curves differ: {la} vs {lb}"
    ca, cb = _ckpt(A, 4), _ckpt(B, 4)
    _assert_tensor_dicts_close(_model_state(ca), _model_state(cb), "model at step 4")
    _assert_optimizer_close(torch.load(ca / "optimizer.bin", weights_only=True),
                            torch.load(cb / "optimizer.bin", weights_only=True))
    ema_a = torch.load(ca / "custom_checkpoint_0.pkl", weights_only=True)
    ema_b = torch.load(cb / "custom_checkpoint_0.pkl", weights_only=True)
    assert int(ema_a["num_updates"]) == int(ema_b["num_updates"]) == 4
    _assert_tensor_dicts_close(ema_a, ema_b, "EMA at step 4")
    from safetensors.torch import load_file
    _assert_tensor_dicts_close(load_file(str(A / "backbone.safetensors")), load_file(str(B / "backbone.safetensors")),
                               "exported backbone", atol=1e-3)


def test_export(runs):
    A, _, _ = runs
    meta = json.loads((A / "backbone.json").read_text())
    assert meta["family"] == "flow" and meta["prediction"] == "velocity" and meta["type"] == "rdpm-unet"
    assert meta["network"]["in_channels"] == 3 and meta["network"]["image_size"] == 16
    assert meta["network"]["num_classes"] == 10 and meta["network"]["base_channels"] == 32
    assert meta["autoencoder"]["name"] == "pixels" and meta["autoencoder_spec"] == "pixels"
    assert meta["data"] == {"path": "procedural:64", "image_size": 16}
    assert meta["steps"] == 4 and meta["model"] == "unet-tiny"
    cfg = json.loads((A / "config.json").read_text())
    assert cfg["max_steps"] == 4 and cfg["family"] == "flow"
    assert cfg["resolved"]["latent_shape"] == [3, 16, 16] and cfg["resolved"]["num_images"] == 64
    assert cfg["resolved"]["family"] == {"name": "flow"}
    # sample grid: 10 classes × 8 images of 16 px with 2 px padding
    from PIL import Image
    png = A / "samples" / "step_0000004.png"
    assert png.exists()
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (8 * 18 + 2, 10 * 18 + 2)
    # the exported weights are the EMA of the last checkpoint, in fp16
    from safetensors.torch import load_file
    w = load_file(str(A / "backbone.safetensors"))
    ema = torch.load(_ckpt(A, 4) / "custom_checkpoint_0.pkl", weights_only=True)
    assert all(v.dtype == torch.float16 for v in w.values())
    for k, v in w.items():
        assert torch.equal(v, ema["shadow." + k.replace(".", "__")].half()), k
    model = _model_state(_ckpt(A, 4))
    assert any(not torch.equal(w[k], model[k].half()) for k in w)     # EMA, not the raw weights
    bb = load_backbone(str(A))
    assert bb.family.name == "flow" and bb.latent_shape == (3, 16, 16) and bb.num_classes == 10
    xh, eh = bb.predict(torch.randn(2, 3, 16, 16), 0.5, torch.tensor([0, 10]))
    assert torch.isfinite(xh).all() and torch.isfinite(eh).all()


# ------------------------------------------------------------------------------ bad input
SMALL = ("--data-path procedural:16 --image-size 8 --model unet-tiny --family flow --max-steps 1 "
         "--global-batch-size 8 --sample-every 0 --sample-steps 1").split()


def test_bad_batch_divisibility(tmp_path, cli_error):
    err = cli_error(main, SMALL + ["--global-batch-size", "6", "--grad-accum", "4", "--results-dir", str(tmp_path / "r")])
    assert re.search(r"--global-batch-size 6 must be divisible by .*1×4", err)


def test_missing_data_path(tmp_path, cli_error):
    missing = tmp_path / "no-such-dataset"
    assert str(missing) in cli_error(main, SMALL + ["--data-path", str(missing), "--results-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()                                   # refused before the run folder


def test_resume_from_nonexistent_checkpoint(tmp_path, cli_error):
    err = cli_error(main, SMALL + ["--resume-from-checkpoint", "/nonexistent", "--results-dir", str(tmp_path / "r")])
    assert "trainer_state.json" in err and "/nonexistent" in err
    assert not (tmp_path / "r" / "backbone.safetensors").exists()


# ------------------------------------------------------------------------------ training signal
TINY = dict(in_channels=3, image_size=8, base_channels=16, channel_mult=(1,), num_res_blocks=1,
            attn_resolutions=(), dropout=0.0, num_classes=3)


def _batch():
    g = torch.Generator().manual_seed(0)
    # smooth images in [-1, 1]
    x = torch.nn.functional.interpolate(torch.rand(8, 3, 2, 2, generator=g) * 2 - 1, size=8, mode="bilinear")
    return x, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])


@pytest.mark.parametrize("fam_key", sorted(FAMILY_OF))
def test_diffusion_loss_decreases(fam_key):
    torch.manual_seed(0)
    fam = make_family(fam_key)
    net = UNet(UNetConfig(**TINY))
    bb = NetworkBackbone(net, fam)
    x, y = _batch()

    def fixed_loss():
        return diffusion_loss(bb, x, y, torch.Generator().manual_seed(123))

    with torch.no_grad():
        before = fixed_loss().item()
    # the same seed gives the same Monte-Carlo estimate; another seed a different one
    assert fixed_loss().item() == pytest.approx(before, rel=1e-6)
    assert diffusion_loss(bb, x, y, torch.Generator().manual_seed(7)).item() != pytest.approx(before, rel=1e-6)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(8):
        loss = fixed_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = fixed_loss().item()
    assert after < 0.8 * before, (fam_key, before, after)


class _OracleBackbone:
    """raw() returns the exact target of a known clean batch x (recovering ε from x_t)."""

    def __init__(self, family, prediction, x, output=None, sigma_data=0.5):
        self.family, self.prediction, self.x, self.sigma_data = family, prediction, x, sigma_data
        self.output = output or prediction

    def raw(self, x_t, t, y):
        s, S = broadcast_time(self.family.s(t), x_t), broadcast_time(self.family.S(t), x_t)
        eps = (x_t - s * self.x) / S
        return {"epsilon": eps, "velocity": eps - self.x, "sample": self.x}[self.output]


@pytest.mark.parametrize("fam_key", ["vp", "vp-continuous", "ve", "flow"])
def test_diffusion_loss_target_matches_prediction_type(fam_key):
    """A backbone that outputs the exact target of its family's prediction type has zero loss;
    the target of another prediction type does not."""
    fam = make_family(fam_key)
    pred = {"vp-discrete": "epsilon", "vp-continuous": "epsilon", "ve": "sample", "flow": "velocity"}[fam.name]
    x, y = _batch()
    good = diffusion_loss(_OracleBackbone(fam, pred, x), x, y, torch.Generator().manual_seed(1)).item()
    wrong = "velocity" if pred != "velocity" else "epsilon"
    bad = diffusion_loss(_OracleBackbone(fam, pred, x, output=wrong), x, y, torch.Generator().manual_seed(1)).item()
    assert good < 1e-6 and bad > 1e-2, (good, bad)


class _TimeRecorder:
    """raw() records the training times it is called with."""

    def __init__(self, family):
        self.family, self.prediction, self.sigma_data, self.times = family, "epsilon", 0.5, None

    def raw(self, x_t, t, y):
        self.times = t.clone()
        return torch.zeros_like(x_t)


@pytest.mark.parametrize("fam_key", ["vp", "vp-continuous", "ve", "flow"])
def test_focus_draws_from_the_low_noise_quantile(fam_key):
    """--focus-fraction F --focus-quantile Q: the chosen share of the batch has noise levels in the
    lowest Q quantile of the family's distribution; the rest are exactly the plain draws."""
    fam = make_family(fam_key)
    x = torch.zeros(512, 3, 2, 2)
    Q = 0.05
    q_max = float(fam.training_times(torch.tensor([Q]), torch.special.ndtri(torch.tensor([Q]).double()).float())[0])

    def times(fraction):
        rec = _TimeRecorder(fam)
        diffusion_loss(rec, x, None, torch.Generator().manual_seed(3), Q, fraction)
        return rec.times

    plain, all_low, half = times(0.0), times(1.0), times(0.5)
    assert (all_low <= q_max).all() and (plain > q_max).float().mean() > 0.8
    same = half == plain
    assert 0.35 < same.float().mean() < 0.65 + Q            # about half kept their plain draw ...
    assert (half[~same] <= q_max).all()                      # ... the others come from the low quantile
    if fam_key == "vp":
        assert all_low.max() < Q * fam.num_train_timesteps and len(all_low.unique()) > 20


def test_init_from_copies_weights_and_refuses_another_network(runs, tmp_path, cli_error):
    from rdpm_gddcm.train_backbone import init_network
    A, _, _ = runs
    src = load_backbone(str(A))
    cfg = src.net.cfg
    net = UNet(cfg)
    init_network(net, cfg, str(A), src.family)
    for (k, a), (_, b) in zip(net.state_dict().items(), src.net.state_dict().items()):
        assert torch.equal(a, b.to(a.dtype)), k
    assert "--model" in cli_error(main, BASE + ["--results-dir", str(tmp_path / "r"), "--model", "unet-cpu",
                                                "--init-from", str(A)])
    assert "--family" in cli_error(main, [*BASE, "--results-dir", str(tmp_path / "r2"), "--init-from", str(A),
                                          "--family", "vp"])
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()      # refused before writing


def test_stop_after_minutes_checkpoints_and_resumes(tmp_path):
    """--stop-after-minutes stops at the first step past the limit with a checkpoint and no export;
    the resumed run finishes and exports."""
    run = tmp_path / "t"
    main(BASE + ["--results-dir", str(run), "--stop-after-minutes", "0.00001"])
    assert not (run / "backbone.safetensors").exists()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_0000001"]
    main(BASE + ["--results-dir", str(run), "--resume-from-checkpoint", "latest"])
    assert (run / "backbone.safetensors").exists()


def test_export_checkpoint_equals_the_runs_own_export(runs, tmp_path):
    """--export-checkpoint writes what the run exported at its end (same EMA weights, family and
    network), plus how many images the checkpoint had seen."""
    A, _, _ = runs
    main(["--results-dir", str(A), "--export-checkpoint", "latest", "--export-dir", str(tmp_path / "e")])
    from safetensors.torch import load_file
    ours, theirs = load_file(str(tmp_path / "e" / "backbone.safetensors")), load_file(str(A / "backbone.safetensors"))
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    meta, run_meta = (json.loads((d / "backbone.json").read_text()) for d in (tmp_path / "e", A))
    for key in ("family", "family_config", "prediction", "sigma_data", "network", "autoencoder", "steps", "clip_sample"):
        assert meta[key] == run_meta[key], key
    assert meta["images_seen"] == 4 * 8


def test_fine_tune_counts_its_sources_images(runs, tmp_path):
    """A run started with --init-from records the images it saw itself (``images_seen``) and with its
    source's (``images_seen_total``), in its own export and in --export-checkpoint's; a fine-tune of a
    fine-tune adds up, and a run from scratch has both equal."""
    A, _, _ = runs
    F, G = tmp_path / "F", tmp_path / "G"
    main(BASE + ["--results-dir", str(F), "--init-from", str(A), "--max-steps", "2"])
    main(BASE + ["--results-dir", str(G), "--init-from", str(F), "--max-steps", "2"])
    main(["--results-dir", str(G), "--export-checkpoint", "latest", "--export-dir", str(tmp_path / "e")])
    meta = {d.name: json.loads((d / "backbone.json").read_text()) for d in (A, F, G, tmp_path / "e")}
    assert (meta["A"]["images_seen"], meta["A"]["images_seen_total"]) == (4 * 8, 4 * 8)
    assert (meta["F"]["images_seen"], meta["F"]["images_seen_total"]) == (2 * 8, 6 * 8)
    for k in ("G", "e"):
        assert (meta[k]["images_seen"], meta[k]["images_seen_total"]) == (2 * 8, 8 * 8), k


def test_export_checkpoint_without_a_run(tmp_path, cli_error):
    assert "config.json" in cli_error(main, ["--results-dir", str(tmp_path / "none"), "--export-checkpoint", "latest"])
    assert not (tmp_path / "none").exists()


def test_label_dropout_rate_and_null_class():
    """CFG training: the dropped share is the rate (binomial 5σ bound), dropped labels are exactly the
    null class, the others are unchanged, and the same generator state drops the same labels."""
    from rdpm_gddcm.training import drop_labels
    n, rate = 20000, 0.1
    y = torch.randint(10, (n,), generator=torch.Generator().manual_seed(0))
    out = drop_labels(y, 10, rate, torch.Generator().manual_seed(1))
    dropped = out != y
    assert abs(dropped.float().mean().item() - rate) < 5 * (rate * (1 - rate) / n) ** 0.5
    assert (out[dropped] == 10).all() and torch.equal(out[~dropped], y[~dropped])
    assert torch.equal(out, drop_labels(y, 10, rate, torch.Generator().manual_seed(1)))
    assert torch.equal(drop_labels(y, 10, 0.0, torch.Generator()), y)
    assert (drop_labels(y, 10, 1.0, torch.Generator()) == 10).all()


def test_run_state_continues_a_run_elsewhere(tmp_path):
    """--run-state: the first leg stops and packs its checkpoint; the run folder is then lost (another
    machine); the same command resumes from the packed state, and the result matches the
    uninterrupted run up to the bf16 rounding of Adam's moments."""
    from safetensors.torch import load_file
    state, whole, legs = tmp_path / "state", tmp_path / "whole", tmp_path / "legs"
    main(BASE + ["--results-dir", str(whole)])
    main(BASE + ["--results-dir", str(legs), "--run-state", str(state), "--stop-at-step", "2"])
    assert sorted(p.name for p in state.iterdir()) == ["ema.safetensors", "model.safetensors", "optimizer.safetensors",
                                                        "run_state.json"]
    shutil.rmtree(legs)
    main(BASE + ["--results-dir", str(legs), "--run-state", str(state)])
    assert "resumed from" in (legs / "log.txt").read_text()
    assert json.loads((state / "run_state.json").read_text())["trainer_state"]["step"] == 4
    a, b = load_file(str(whole / "backbone.safetensors")), load_file(str(legs / "backbone.safetensors"))
    assert set(a) == set(b)
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 2e-3, worst
