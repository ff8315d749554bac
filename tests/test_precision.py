"""``--mixed-precision auto``: bf16 on a CPU only with native bf16 and a probe that finds it faster;
every command defaults to auto; the probe's verdict is cached per machine."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from rdpm_gddcm import precision as P

# results that depend on float kernels: CI reruns these under other ATEN_CPU_CAPABILITY values
pytestmark = pytest.mark.numerics

AVX512 = {"avx512f", "avx512bw", "avx2"}


@pytest.mark.parametrize("flags,cap,isa,machine,native", [
    (AVX512, "AVX512", "ALL", "x86_64", False),                           # AVX-512 without bf16
    (AVX512 | {"avx512_bf16"}, "AVX512", "ALL", "x86_64", True),
    (AVX512 | {"amx_bf16"}, "AVX512", "DEFAULT", "x86_64", True),
    (AVX512 | {"avx512_bf16"}, "AVX2", "ALL", "x86_64", False),           # ATEN_CPU_CAPABILITY=avx2
    (AVX512 | {"avx512_bf16"}, "DEFAULT", "ALL", "x86_64", False),        # ATEN_CPU_CAPABILITY=default
    (AVX512 | {"avx512_bf16"}, "AVX512", "AVX2", "x86_64", False),        # ONEDNN_MAX_CPU_ISA=AVX2
    (AVX512 | {"avx512_bf16"}, "AVX512", "AVX512_CORE", "x86_64", False),
    (AVX512 | {"avx512_bf16"}, "AVX512", "AVX512_CORE_BF16", "x86_64", True),
    ({"avx2", "fma"}, "AVX2", "ALL", "x86_64", False),                    # an AVX2-only EPYC
    ({"asimd", "bf16"}, "DEFAULT", "ALL", "aarch64", True),
    ({"asimd"}, "DEFAULT", "ALL", "aarch64", False),
])
def test_native_bf16_rule(flags, cap, isa, machine, native):
    got, why = P.cpu_native_bf16(flags, cap, isa, machine)
    assert got is native and why


def test_explicit_modes_pass_through_and_nonsense_is_refused():
    for mode in ("no", "bf16", "fp16"):
        assert P.resolve_precision(mode, "cpu").mode == mode
    assert P.resolve_precision("no", "cpu").dtype is None
    assert P.resolve_precision("bf16", "cpu").dtype is torch.bfloat16
    with pytest.raises(ValueError, match="--mixed-precision"):
        P.resolve_precision("fp8", "cpu")


def test_auto_without_native_bf16_is_fp32_and_never_probes(monkeypatch):
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: (False, "no bf16 here"))

    def probe(dtype):
        raise AssertionError("the probe must not run on a CPU without native bf16")
    p = P.resolve_precision("auto", "cpu", probe, "x")
    assert p.mode == "no" and "no bf16 here" in p.reason


@pytest.mark.parametrize("fast,want", [("bf16", "bf16"), ("fp32", "no")])
def test_auto_with_native_bf16_follows_the_probe_and_caches_it(monkeypatch, tmp_path, fast, want):
    monkeypatch.setenv("RDPM_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: (True, "native"))
    monkeypatch.setattr(P, "_machine_busy", lambda: False)
    calls = []

    def probe(dtype):
        calls.append(dtype)
        slow = (dtype is None) == (fast == "bf16")
        time.sleep(0.03 if slow else 0.001)
    p = P.resolve_precision("auto", "cpu", probe, f"toy-{fast}")
    assert p.mode == want and "timing probe" in p.reason
    n = len(calls)
    assert n >= 4 and None in calls and torch.bfloat16 in calls
    assert P.resolve_precision("auto", "cpu", probe, f"toy-{fast}").mode == want
    assert len(calls) == n                                  # second resolution read the cache
    assert (tmp_path / "precision_probes.json").is_file()


def test_auto_is_fp32_when_the_cpu_is_emulated_as_avx2():
    """The real rule on this machine's kernels, as an AVX2-only CPU would see it."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = ("import torch; from rdpm_gddcm.precision import resolve_precision\n"
            "def probe(d): raise SystemExit('probe ran')\n"
            "print(resolve_precision('auto', 'cpu', probe, 'x').mode)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "no"


def test_every_command_defaults_to_auto():
    import argparse

    from rdpm_gddcm import classifier, demo, sample, tokenizer, training
    p = argparse.ArgumentParser()
    tokenizer.add_model_args(p)
    assert p.parse_args(["--backbone", "x"]).mixed_precision == "auto"
    p = argparse.ArgumentParser()
    training.add_train_args(p, training.TrainConfig())
    assert p.parse_args([]).mixed_precision == "auto"
    assert sample.parse_args(["--ckpt", "x", "--sample-dir", "y"]).mixed_precision == "auto"
    assert classifier.TrainConfig().mixed_precision == "auto"
    import inspect
    assert inspect.signature(demo.run).parameters["precision"].default == "auto"


def test_backbone_and_generator_probes_run_their_networks(monkeypatch, tmp_path):
    """With native bf16 (simulated), the probes run the real networks in both precisions and the
    choice becomes the backbone's autocast dtype."""
    from rdpm_gddcm.backbones import NetworkBackbone
    from rdpm_gddcm.families import Family
    from rdpm_gddcm.generator import GeneratorConfig, TokenGenerator
    from rdpm_gddcm.networks import UNET_CONFIGS, UNet, UNetConfig
    monkeypatch.setenv("RDPM_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: (True, "simulated"))
    monkeypatch.setattr(P, "_machine_busy", lambda: False)
    net = UNet(UNetConfig(**{**UNET_CONFIGS["unet-tiny"], "in_channels": 3, "image_size": 8, "num_classes": 2}))
    bb = NetworkBackbone(net, Family("flow"))
    p = bb.set_precision("auto", "cpu", batch=2)
    assert p.mode in ("no", "bf16") and "timing probe" in p.reason
    assert bb.autocast_dtype is p.dtype and bb.precision is p
    g = TokenGenerator(GeneratorConfig(hidden=32, depth=1, heads=2, num_blocks=4, block_dim=12, num_rows=3,
                                       codebook_size=16, num_classes=2, head_rank=2))
    for train in (False, True):
        q = g.resolve_precision("auto", "cpu", batch=2, train=train)
        assert q.mode in ("no", "bf16") and "timing probe" in q.reason
    assert all(p.grad is None for p in g.parameters())       # the training probe leaves no gradients


def test_generator_precision_without_native_bf16(monkeypatch):
    from rdpm_gddcm.generator import GeneratorConfig, TokenGenerator
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: (False, "emulated"))
    g = TokenGenerator(GeneratorConfig(hidden=32, depth=1, heads=2, num_blocks=4, block_dim=12, num_rows=3,
                                       codebook_size=16, num_classes=2))
    p = g.resolve_precision("auto", "cpu")
    assert p.mode == "no" and "emulated" in p.reason


def test_a_probe_on_a_busy_machine_is_used_but_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("RDPM_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: (True, "native"))
    monkeypatch.setattr(P, "_machine_busy", lambda: True)
    calls = []
    p = P.resolve_precision("auto", "cpu", lambda d: calls.append(d), "busy")
    assert "not cached" in p.reason and not (tmp_path / "precision_probes.json").exists()
    P.resolve_precision("auto", "cpu", lambda d: calls.append(d), "busy")
    assert len(calls) == 2 * 2 * 6                   # probed again: warm-up + 5 runs, both precisions, twice
