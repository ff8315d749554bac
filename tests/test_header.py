"""The typed token header (SPEC §8): lossless JSON, validation of every field, and the chain it
describes (the row <-> step mapping and the per-row codebook blocks live on ChainSpec)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rdpm_gddcm.chain import ChainSpec
from rdpm_gddcm.codebooks import INIT_STEP, Grid, VirtualCodebook
from rdpm_gddcm.header import TokenFormatError, TokenHeader
from rdpm_gddcm.plans import Plan

ROOT = Path(__file__).resolve().parents[1]
# the previous generator's header: written before TokenHeader existed (codebook v1, no encoder_environment)
SHIPPED = json.loads((ROOT / "assets" / "cifar10-generator-pixels" / "generator.json").read_text())["tokens_header"]


def test_shipped_header_round_trips_exactly():
    """A header written before TokenHeader existed (no encoder_environment) parses and serialises to
    the same JSON, so manifests and token files keep their bytes."""
    h = TokenHeader.from_json(SHIPPED)
    assert json.dumps(h.to_json(), sort_keys=True) == json.dumps(SHIPPED, sort_keys=True)
    assert h.codebook_version == "gddcm-codebook-v1" and h.precision_mode == "bf16"
    assert h.num_blocks == h.grid[0] * h.grid[1] and h.image_size == SHIPPED["image_shape"][-1]


def test_unknown_fields_are_kept_verbatim():
    h = TokenHeader.from_json({**SHIPPED, "from_the_future": {"a": 1}})
    assert h.to_json()["from_the_future"] == {"a": 1}


@pytest.mark.parametrize("key,value,needle", [
    ("format_version", 2, "format version"),
    ("grid", [0, 4], "grid"),
    ("grid", "4x4", "grid"),
    ("codebook_sizes", [1], "codebook_sizes"),
    ("codebook", {"generator_version": "gddcm-codebook-v9", "seed": 0}, "codebook generator"),
    ("codebook", {"seed": "0"}, "seed"),
    ("latent_shape", [3, 32], "latent_shape"),
    ("num_token_rows", 3, "num_token_rows"),
    ("backbone_dtype", "float8", "backbone_dtype"),
    ("label", "cat", "label"),
    ("plan", {"kind": "trajectory"}, "plan"),
])
def test_damaged_fields_are_named(key, value, needle):
    with pytest.raises(TokenFormatError, match=needle):
        TokenHeader.from_json({**SHIPPED, key: value})


def test_missing_fields_are_named():
    d = {k: v for k, v in SHIPPED.items() if k not in ("plan", "grid")}
    with pytest.raises(TokenFormatError, match="lacks grid, plan"):
        TokenHeader.from_json(d)
    with pytest.raises(TokenFormatError, match="not a JSON object"):
        TokenHeader.from_json([1, 2])


def test_chain_spec_is_the_header_chain():
    h = TokenHeader.from_json(SHIPPED)
    spec = h.chain_spec()
    assert spec.num_token_rows == h.num_token_rows and spec.codebook_size == h.codebook_size
    assert spec.plan.to_json() == h.plan and spec.codebook.version == h.codebook_version
    assert (spec.grid.gh, spec.grid.gw) == tuple(h.grid) and list(spec.grid.latent_shape) == h.latent_shape


@pytest.mark.parametrize("init", ["codebook", "zeros"])
def test_rows_and_steps_are_inverse(init):
    plan = Plan("trajectory", [(10.0, 5.0, 8.0), (8.0, 4.0, 6.0), (6.0, 2.0, 4.0)], [4.0, -1.0], "ddim", {})
    spec = ChainSpec(plan, VirtualCodebook(0, 12, version="gddcm-codebook-v2"), Grid((3, 2, 2), 1, 2), 8, init=init)
    steps = ([INIT_STEP] if init == "codebook" else []) + [0, 1, 2]
    assert [spec.row_of_step(n) for n in steps] == list(range(spec.num_token_rows))
    assert [spec.step_of_row(r) for r in range(spec.num_token_rows)] == steps
    if init == "zeros":
        with pytest.raises(ValueError):
            spec.row_of_step(INIT_STEP)
    for r in range(spec.num_token_rows):                       # the row's own codebook, in block layout
        blocks = spec.codebook_blocks(r, "cpu")
        want = spec.grid.entries_to_blocks(spec.codebook.entries(spec.step_of_row(r), 8, "cpu"))
        assert blocks.shape == (8, 2, 6) and torch.equal(blocks, want)
        assert spec.codebook_blocks(r, "cpu") is blocks          # kept
