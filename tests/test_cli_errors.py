"""Bad input, table-driven: every case gets exit code 2, exactly one ``PROG: error: ...`` line that
names the thing, and leaves the working folder exactly as it was (no file created or changed).

The cases are the README's "Reliability" table; each row is (command, arguments, a word the
message must contain). ``{tmp}`` is a fresh folder, ``{gen}``/``{vp}`` the shipped generator and
backbone (cases that need a model load it first and fail after, still writing nothing).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from rdpm_gddcm import codec, evaluate, init_prior, reconstruct, sample, tokenize, train_backbone, train_generator

ROOT = Path(__file__).resolve().parents[1]
GEN, VP = ROOT / "assets" / "cifar10-generator-pixels", ROOT / "assets" / "cifar10-pixels-vp"
MAINS = {"rdpm-sample": sample.main, "rdpm-tokenize": tokenize.main, "rdpm-reconstruct": reconstruct.main,
         "rdpm-codec": codec.main, "rdpm-train-backbone": train_backbone.main, "rdpm-train": train_generator.main,
         "rdpm-eval": evaluate.main, "rdpm-fit-init-prior": init_prior.main}
S = ["--ckpt", "{gen}", "--sample-dir", "{tmp}/s"]
T = ["--data-path", "procedural:40", "--backbone", "{vp}", "--out", "{tmp}/tok", "--num-steps", "2"]
R = ["--data-path", "procedural:40", "--backbone", "{vp}", "--out", "{tmp}/rec", "--num-steps", "2"]
B = ["--data-path", "procedural:40", "--image-size", "16", "--model", "unet-tiny", "--results-dir", "{tmp}/bb"]

CASES = [
    ("rdpm-sample", S + ["--temperature", "-1"], "--temperature"),
    ("rdpm-sample", S + ["--cfg-scale", "-2"], "--cfg-scale"),
    ("rdpm-sample", S + ["--num-samples", "0"], "--num-samples"),
    ("rdpm-sample", S + ["--batch-size", "0"], "--batch-size"),
    ("rdpm-sample", S + ["--class-labels", "cat"], "--class-labels"),
    ("rdpm-sample", S + ["--class-labels", "3,12"], "--class-labels"),
    ("rdpm-sample", S + ["--top-k", "-1"], "--top-k"),
    ("rdpm-sample", S + ["--top-p", "0"], "--top-p"),
    ("rdpm-sample", S + ["--mixed-precision", "fp8"], "--mixed-precision"),
    ("rdpm-sample", ["--ckpt", "{tmp}/nope", "--sample-dir", "{tmp}/s"], "nope"),
    ("rdpm-sample", S + ["--init-prior", "mixture"], "--init-prior"),
    ("rdpm-sample", S + ["--init-prior", "gaussian"], "init prior"),
    ("rdpm-fit-init-prior", ["--ckpt", "{tmp}/nope", "--data-path", "procedural:40"], "nope"),
    ("rdpm-fit-init-prior", ["--ckpt", "{gen}", "--data-path", "procedural:40", "--rank", "0"], "--rank"),
    ("rdpm-tokenize", T + ["--codebook-size", "1"], "--codebook-size"),
    ("rdpm-tokenize", T + ["--codebook-size", "0"], "--codebook-size"),
    ("rdpm-tokenize", T + ["--grid", "0x0"], "--grid"),
    ("rdpm-tokenize", T + ["--grid", "8"], "--grid"),
    ("rdpm-tokenize", T + ["--p", "nan"], "--p"),
    ("rdpm-tokenize", T + ["--num-images", "0"], "--num-images"),
    ("rdpm-tokenize", T + ["--num-images", "41"], "--num-images"),
    ("rdpm-tokenize", T + ["--shard-size", "0"], "--shard-size"),
    ("rdpm-tokenize", T + ["--batch-size", "0"], "--batch-size"),
    ("rdpm-tokenize", ["--data-path", "procedural:40", "--backbone", "{tmp}/nobackbone", "--out", "{tmp}/tok"],
     "nobackbone"),
    ("rdpm-reconstruct", R + ["--num-images", "0"], "--num-images"),
    ("rdpm-reconstruct", R + ["--codebook-size", "70000"], "--codebook-size"),
    ("rdpm-reconstruct", R + ["--grid", "3x3"], "grid"),
    ("rdpm-reconstruct", R + ["--rfid", "--num-images", "1"], "--rfid"),
    ("rdpm-codec", ["encode", "{tmp}/missing.png", "-o", "{tmp}/x.gddcm", "--backbone", "{vp}"], "missing.png"),
    ("rdpm-codec", ["decode", "{tmp}/missing.gddcm", "-o", "{tmp}/x.png", "--backbone", "{vp}"], "missing.gddcm"),
    ("rdpm-codec", ["encode", "{tmp}", "-o", "{tmp}/x.gddcm", "--backbone", "{vp}"], "folder"),
    ("rdpm-codec", ["decode", "{tmp}/keep.txt", "-o", "{tmp}/x.png", "--backbone", "{vp}"], "not a gDDCM token file"),
    ("rdpm-train-backbone", B + ["--global-batch-size", "0"], "--global-batch-size"),
    ("rdpm-train-backbone", B + ["--ckpt-every", "0"], "--ckpt-every"),
    ("rdpm-train-backbone", B + ["--log-every", "0"], "--log-every"),
    ("rdpm-train-backbone", B + ["--keep-checkpoints", "0"], "--keep-checkpoints"),
    ("rdpm-train-backbone", B + ["--lr", "nan"], "--lr"),
    ("rdpm-train-backbone", B + ["--model", "unet-huge"], "--model"),
    ("rdpm-train-backbone", ["--data-path", "{tmp}/imgs", "--image-size", "16", "--model", "unet-tiny", "--results-dir",
                             "{tmp}/bb", "--max-steps", "1", "--global-batch-size", "2"], "b.png"),
    ("rdpm-train", ["--tokens", "{tmp}/notokens", "--results-dir", "{tmp}/g", "--global-batch-size", "0"],
     "--global-batch-size"),
    ("rdpm-train", ["--tokens", "{tmp}/notokens", "--results-dir", "{tmp}/g"], "manifest.json"),
    ("rdpm-eval", ["--samples", "{tmp}/one.npz", "--reference", "{tmp}/one.npz", "--metrics", "fid",
                   "--no-stats-cache", "--out", "{tmp}/ev"], "at least 2"),
]


def prepare_workdir(tmp: Path):
    """The files the cases refer to: an untouched text file, a one-image .npz, and an image folder
    with one unreadable image (also used by benchmarks/bench_reliability.py)."""
    from PIL import Image
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "keep.txt").write_text("untouched")
    np.savez(tmp / "one.npz", arr_0=np.zeros((1, 8, 8, 3), np.uint8))
    (tmp / "imgs" / "cat").mkdir(parents=True)
    Image.new("RGB", (16, 16), (10, 20, 30)).save(tmp / "imgs" / "cat" / "a.png")
    (tmp / "imgs" / "cat" / "b.png").write_bytes(b"not a png")                 # an unreadable image


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("prog,args,needle", CASES, ids=[f"{c[0]}:{' '.join(c[1][-2:])}" for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(prog, args, needle, tmp_path, cli_error):
    tmp = tmp_path / "work"
    prepare_workdir(tmp)
    fill = {"tmp": str(tmp), "gen": str(GEN), "vp": str(VP)}
    argv = [a.format(**fill) for a in args]
    before = _snapshot(tmp)
    line = cli_error(MAINS[prog], argv)
    assert line.startswith(f"{prog}") and needle.format(**fill).split("/")[-1] in line, line
    assert _snapshot(tmp) == before


def test_decoding_with_a_backbone_of_another_family_names_the_backbone(tmp_path, cli_error):
    """The header's family and backbone are checked before the plan is rebuilt (which would otherwise
    fail first, with a misleading plan-range message)."""
    from PIL import Image
    img = tmp_path / "cat.png"
    Image.new("RGB", (32, 32), (120, 60, 30)).save(img)
    tok = tmp_path / "cat.gddcm"
    assert codec.main(["encode", str(img), "-o", str(tok), "--backbone", str(VP), "--plan", "trajectory",
                       "--num-steps", "2", "--grid", "2x2", "--codebook-size", "16", "--mixed-precision", "no"]) == 0
    line = cli_error(codec.main, ["decode", str(tok), "-o", str(tmp_path / "x.png"), "--backbone",
                                  str(ROOT / "assets" / "cifar10-pixels-flow")])
    assert "vp-discrete" in line and "flow" in line and "plan" not in line
    assert not (tmp_path / "x.png").exists()


def test_a_shard_damaged_after_its_done_marker_is_redone(tmp_path):
    import numpy as np

    from rdpm_gddcm.token_io import shard_complete, write_shard
    write_shard(tmp_path, 0, np.zeros((4, 3, 2)), np.arange(4), K=16)
    assert shard_complete(tmp_path, 0)
    f = tmp_path / "shard-00000.tokens.npy"
    f.write_bytes(f.read_bytes()[:-10])                    # truncated after it was finished
    assert not shard_complete(tmp_path, 0)
