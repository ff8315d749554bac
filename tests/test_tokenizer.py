"""SPEC §8 and the tokenizer commands: codec round trip, header checks, bad files, shards."""
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from rdpm_gddcm import codec, reconstruct, tokenize
from rdpm_gddcm.autoencoders import PixelAutoencoder
from rdpm_gddcm.backbones import load_backbone
from rdpm_gddcm.data import ProceduralDataset, save_images
from rdpm_gddcm.token_io import (ShardedTokens, TokenDataset, TokenFormatError, pack_indices, read_token_file, unpack_indices,
                                 write_token_file)
from rdpm_gddcm.tokenizer import Tokenizer, TokenizerConfig

# results that depend on float kernels: CI reruns these under other ATEN_CPU_CAPABILITY values
pytestmark = pytest.mark.numerics

SIZE = 16          # the image size of conftest's tiny backbone


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory, make_tiny_backbone):
    return make_tiny_backbone(tmp_path_factory.mktemp("bb") / "flow")


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    img, _ = ProceduralDataset(4, SIZE)[1]
    p = tmp_path_factory.mktemp("img") / "x.png"
    save_images(img[None], [str(p)])
    return p


def test_pack_roundtrip():
    rng = np.random.default_rng(0)
    for bits in [1, 3, 10, 12, 16, 17]:
        idx = rng.integers(0, 2 ** bits, size=57)
        assert np.array_equal(unpack_indices(pack_indices(idx, bits), 57, bits), idx)


def _tok(backbone_dir, **kw):
    bb = load_backbone(str(backbone_dir))
    cfg = TokenizerConfig(**{"plan": "trajectory", "p": 0.5, "num_steps": 6, "codebook_size": 64, "grid": "2x2", **kw})
    return Tokenizer(bb, PixelAutoencoder(), cfg, SIZE)


def test_saved_fp16_backbone_roundtrip(backbone_dir):
    bb = load_backbone(str(backbone_dir))
    assert bb.family.name == "flow" and bb.latent_shape == (3, SIZE, SIZE)
    again = load_backbone(str(backbone_dir))
    assert bb.weights_hash() == again.weights_hash()


def test_codec_cli_roundtrip_matches_encoder(backbone_dir, image_file, tmp_path):
    f = tmp_path / "x.gddcm"
    codec.main(["encode", str(image_file), "-o", str(f), "--backbone", str(backbone_dir), "--plan", "trajectory",
                "--p", "0.5", "--num-steps", "6", "--codebook-size", "1024", "--grid", "2x2"])
    header, tokens = read_token_file(f)
    assert tokens.shape == (7, 4) and header.codebook_sizes == [1024] * 6
    # file size: header + 28 tokens at 10 bits
    assert f.stat().st_size < len(json.dumps(header.to_json())) + 28 * 10 // 8 + 64
    out = tmp_path / "y.png"
    codec.main(["decode", str(f), "-o", str(out), "--backbone", str(backbone_dir)])
    from rdpm_gddcm.data import load_image
    tok = Tokenizer.from_header(header, load_backbone(str(backbone_dir)), PixelAutoencoder())
    _, rec, _ = tok.encode(load_image(str(image_file), SIZE)[None])
    from rdpm_gddcm.metrics import to_uint8
    assert torch.equal(to_uint8(load_image(str(out), SIZE)), to_uint8(rec[0]))


def test_codec_roundtrip_fixed_point_with_descent(backbone_dir, image_file, tmp_path):
    """The descent is part of the plan stored in the header: decode replays it without the flag."""
    f = tmp_path / "d.gddcm"
    codec.main(["encode", str(image_file), "-o", str(f), "--backbone", str(backbone_dir), "--plan", "fixed-point",
                "--num-steps", "8", "--descent-steps", "3", "--codebook-size", "64", "--selection", "jacobian"])
    header, tokens = read_token_file(f)
    steps = header.plan["steps"]
    assert tokens.shape == (9, 1) and len(steps) == 8 and header.plan["config"]["descent_steps"] == 3
    assert steps[0][0] > steps[3][0] == steps[-1][0] == steps[-1][2]      # descends, then stays at T_s
    out = tmp_path / "d.png"
    codec.main(["decode", str(f), "-o", str(out), "--backbone", str(backbone_dir)])
    from rdpm_gddcm.data import load_image
    from rdpm_gddcm.metrics import to_uint8
    tok = Tokenizer.from_header(header, load_backbone(str(backbone_dir)), PixelAutoencoder())
    _, rec, _ = tok.encode(load_image(str(image_file), SIZE)[None])
    assert torch.equal(to_uint8(load_image(str(out), SIZE)), to_uint8(rec[0]))


def test_bad_token_files(backbone_dir, tmp_path):
    tok = _tok(backbone_dir)
    tokens = np.random.default_rng(0).integers(0, 64, size=(tok.num_token_rows, 4))
    good = tmp_path / "good.gddcm"
    write_token_file(good, tok.header(), tokens)
    raw = good.read_bytes()
    cases = {"truncated": raw[:-9], "flipped": raw[:40] + bytes([raw[40] ^ 1]) + raw[41:],
             "magic": b"NOTATOKN" + raw[8:], "version_bit_flip": raw[:8] + (99).to_bytes(4, "little") + raw[12:]}
    newer = raw[:8] + (99).to_bytes(4, "little") + raw[12:-4]                 # a genuine newer file: valid checksum
    cases["newer_version"] = newer + struct.pack("<I", zlib.crc32(newer))
    msgs = {"truncated": "corrupt or truncated", "flipped": "corrupt", "magic": "not a gDDCM token file",
            "version_bit_flip": "corrupt", "newer_version": "format version 99"}
    for name, data in cases.items():
        p = tmp_path / f"{name}.gddcm"
        p.write_bytes(data)
        with pytest.raises(TokenFormatError, match=msgs[name]):
            read_token_file(p)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_token_file(tmp_path / "missing.gddcm")


def test_header_mismatch_refused(backbone_dir, tmp_path, make_tiny_backbone):
    tok = _tok(backbone_dir)
    other_bb = load_backbone(str(make_tiny_backbone(tmp_path / "other", seed=1)))
    other = Tokenizer(other_bb, PixelAutoencoder(), tok.cfg, SIZE)
    with pytest.raises(TokenFormatError, match="different backbone"):
        other.check_header(tok.header())
    for change, what in [(dict(codebook_seed=5), "codebook"), (dict(grid="1x1"), "grid"),
                         (dict(codebook_size=128), "codebook size"), (dict(num_steps=7), "different"), (dict(t_end=0.1), "plan")]:
        t2 = _tok(backbone_dir, **change)
        with pytest.raises(TokenFormatError, match=what):
            t2.check_header(tok.header())
    with pytest.raises(TokenFormatError, match="shape"):
        tok.decode(torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(TokenFormatError, match="outside"):
        tok.decode(torch.full((1, tok.num_token_rows, 4), 64))


def test_from_header_replays_the_tokens_precision_on_a_loaded_backbone(backbone_dir):
    """Decoding replays the encoder's precision whatever `auto` resolves to here: a loaded fp32
    backbone handed to from_header runs in the header's bf16 (and back)."""
    bb = load_backbone(str(backbone_dir))
    bb.set_precision("bf16", "cpu")
    h = Tokenizer(bb, PixelAutoencoder(), TokenizerConfig(num_steps=2, codebook_size=16, grid="2x2"), SIZE).header()
    assert h.backbone_dtype == "bfloat16"
    fresh = load_backbone(str(backbone_dir))
    fresh.set_precision("no", "cpu")
    tok = Tokenizer.from_header(h, fresh, PixelAutoencoder())
    assert tok.backbone is fresh and fresh.precision.mode == "bf16" and fresh.autocast_dtype == torch.bfloat16


def test_encode_refuses_nan_and_wrong_shape(backbone_dir):
    tok = _tok(backbone_dir)
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(torch.full((1, 3, SIZE, SIZE), float("nan")))
    with pytest.raises(ValueError, match="expected images"):
        tok.encode(torch.zeros(1, 1, SIZE, SIZE))


def test_tokenize_images_is_encode_without_the_decode(backbone_dir):
    """rdpm-tokenize's path (no decode) gives encode's tokens, and its latent decodes to encode's image."""
    tok = _tok(backbone_dir)
    x = torch.stack([ProceduralDataset(4, SIZE)[i][0] for i in range(3)])
    tokens, rec, _ = tok.encode(x)
    out = tok.tokenize_images(x)
    assert torch.equal(out.tokens, tokens)
    assert torch.allclose(tok.autoencoder.decode(out.latent), rec, atol=1e-6)
    with pytest.raises(ValueError, match="expected images"):
        tok.tokenize_images(torch.zeros(1, 1, SIZE, SIZE))


def test_reconstruct_cli_writes_metrics(backbone_dir, tmp_path):
    m = reconstruct.run(reconstruct.parse_args([
        "--data-path", "procedural:20", "--backbone", str(backbone_dir), "--num-images", "6", "--batch-size", "4",
        "--out", str(tmp_path / "r"), "--plan", "fixed-point", "--num-steps", "5", "--codebook-size", "16",
        "--verify-decode"]))
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    for k in ("psnr", "ssim", "bits_per_image", "bpp", "seconds_per_image", "num_images"):
        assert k in saved
    assert saved["num_images"] == 6 and saved["bits_per_image"] == (5 + 1) * 4
    assert (tmp_path / "r" / "reconstructions.png").exists() and m["psnr"] > 0


TOK_ARGS = ["--data-path", "procedural:10", "--num-images", "10", "--shard-size", "4", "--batch-size", "2",
            "--plan", "trajectory", "--p", "0.5", "--num-steps", "3", "--codebook-size", "32", "--grid", "2x2"]


def test_tokenize_resume_and_dataset(backbone_dir, tmp_path):
    out = tmp_path / "tok"
    tokenize.run(tokenize.parse_args(TOK_ARGS + ["--backbone", str(backbone_dir), "--out", str(out), "--save-states"]))
    ds = TokenDataset(out)
    assert len(ds) == 10 and ds.tokens.shape == (10, 4, 4) and ds.has_states
    st, xh = ds.states_for([0, 9])
    assert st.shape == (2, 3, 3, SIZE, SIZE) and xh.shape == st.shape
    one_st, one_xh = ds.states_for([0, 9], [2, 1])                          # one step per image
    assert np.array_equal(one_st, st[[0, 1], [2, 1]]) and np.array_equal(one_xh, xh[[0, 1], [2, 1]])
    # resume: remove one shard's marker; only that shard is recomputed and results are identical
    before = np.load(out / "shard-00001.tokens.npy")
    (out / "shard-00001.done").unlink()
    os.utime(out / "shard-00000.tokens.npy", (0, 0))
    tokenize.run(tokenize.parse_args(TOK_ARGS + ["--backbone", str(backbone_dir), "--out", str(out), "--save-states"]))
    assert np.array_equal(np.load(out / "shard-00001.tokens.npy"), before)
    assert os.stat(out / "shard-00000.tokens.npy").st_mtime == 0          # not rewritten
    # a finished dir with other settings is refused
    with pytest.raises(ValueError, match="other settings"):
        tokenize.run(tokenize.parse_args(TOK_ARGS[:-2] + ["--grid", "1x1", "--backbone", str(backbone_dir),
                                                          "--out", str(out)]))


def test_sharded_tokens_index_like_one_int64_array():
    """The memory-mapped shards answer every indexing form the trainer uses exactly like the
    concatenated int64 array would, across shard boundaries and in any order."""
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 60000, (n, 5, 3)).astype(np.uint16) for n in (4, 1, 6, 3)]
    full = np.concatenate(parts).astype(np.int64)
    t = ShardedTokens(parts)
    assert t.shape == full.shape and len(t) == 14
    idx, rows, blocks = rng.integers(0, 14, 9), rng.integers(0, 5, 9), rng.integers(0, 3, 9)
    for key in (3, -1, slice(2, 11), slice(None, None, 3), idx, (idx, rows), (idx, rows, blocks), (5, 2)):
        got = t[key]
        assert got.dtype == np.int64 and np.array_equal(got, full[key]), key
    assert np.array_equal(np.asarray(t), full)
    with pytest.raises(IndexError):
        t[14]


def test_token_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        TokenDataset(tmp_path)


def test_tokenize_same_shards_with_decoding_workers(backbone_dir, tmp_path):
    """Decoding workers only decode: the shards equal the ones made in the main process."""
    one, two = tmp_path / "w0", tmp_path / "w2"
    tokenize.run(tokenize.parse_args(TOK_ARGS + ["--backbone", str(backbone_dir), "--out", str(one), "--num-workers", "0"]))
    tokenize.run(tokenize.parse_args(TOK_ARGS + ["--backbone", str(backbone_dir), "--out", str(two), "--num-workers", "2"]))
    for i in range(3):
        for kind in ("tokens", "labels"):
            assert np.array_equal(np.load(one / f"shard-{i:05d}.{kind}.npy"), np.load(two / f"shard-{i:05d}.{kind}.npy"))


def test_tokenize_same_shards_with_two_processes(backbone_dir, tmp_path):
    """Under `accelerate launch` with 2 CPU processes, the shards equal the 1-process ones. (On a
    machine without a GPU, `--multi_gpu` starts torchrun's K processes and they run as MULTI_CPU;
    `--cpu --num_processes K` would start only one.) The precision is pinned: `auto` probes per thread
    count, and 1 process of 2 threads may rightly choose otherwise than 2 processes of 1 thread."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = TOK_ARGS + ["--mixed-precision", "no", "--backbone", str(backbone_dir)]
    tokenize.run(tokenize.parse_args(args + ["--out", str(one)]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "rdpm_gddcm.tokenize", *args, "--out", str(two)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 process(es)" in r.stdout, r.stdout[-2000:]              # two processes really shared the shards
    for i in range(3):
        assert np.array_equal(np.load(one / f"shard-{i:05d}.tokens.npy"), np.load(two / f"shard-{i:05d}.tokens.npy"))
    assert json.loads((one / "manifest.json").read_text())["header"] == json.loads((two / "manifest.json").read_text())["header"]


def test_tokenize_subset_is_class_balanced_and_extends(backbone_dir, tmp_path):
    """--num-images N takes the first N images in class-interleaved order (every prefix balanced, not
    the first N of the class-sorted folder); a larger N later keeps the finished shards it shares."""
    from rdpm_gddcm.data import ImageFolderDataset, class_interleaved_order
    root = tmp_path / "folder"
    for c in range(3):
        for k in range(4):
            img, _ = ProceduralDataset(12, SIZE)[c * 4 + k]
            (root / f"class{c}").mkdir(parents=True, exist_ok=True)
            save_images(img[None], [str(root / f"class{c}" / f"{k}.png")])
    assert class_interleaved_order([0, 0, 0, 1, 1, 2]) == [0, 3, 5, 1, 4, 2]
    args = ["--data-path", str(root), "--num-steps", "2", "--codebook-size", "16", "--grid", "2x2", "--plan",
            "trajectory", "--p", "0.5", "--shard-size", "4", "--batch-size", "2", "--backbone", str(backbone_dir)]
    out = tmp_path / "tok"
    tokenize.run(tokenize.parse_args(args + ["--num-images", "6", "--out", str(out)]))
    ds = TokenDataset(out)
    assert ds.labels.tolist() == [0, 1, 2, 0, 1, 2]
    # position 1 is class 1's first image (folder index 4): its tokens are that image's encoding
    folder = ImageFolderDataset(str(root), SIZE)
    tok = Tokenizer.from_header(ds.header, load_backbone(str(backbone_dir)), PixelAutoencoder())
    expect, _, _ = tok.encode(folder[4][0][None], torch.tensor([folder[4][1]]))
    assert np.array_equal(ds.tokens[1], expect[0].numpy())
    # extend to 9: shard 0 (positions 0-3) is kept as it is, the old partial shard 1 is redone
    os.utime(out / "shard-00000.tokens.npy", (0, 0))
    tokenize.run(tokenize.parse_args(args + ["--num-images", "9", "--out", str(out)]))
    assert os.stat(out / "shard-00000.tokens.npy").st_mtime == 0
    ds9 = TokenDataset(out)
    assert len(ds9) == 9 and ds9.labels.tolist() == [0, 1, 2] * 3
    assert np.array_equal(ds9.tokens[:6], ds.tokens)
    # finalising the first 4 for a quick look and then growing back to 9 keeps the shards the 9-image
    # run finished (their image counts match what 9 puts there) instead of redoing them
    tokens9 = np.array(ds9.tokens[:])
    tokenize.run(tokenize.parse_args(args + ["--num-images", "4", "--out", str(out)]))
    assert len(TokenDataset(out)) == 4
    for i in (1, 2):
        os.utime(out / f"shard-0000{i}.tokens.npy", (0, 0))
    tokenize.run(tokenize.parse_args(args + ["--num-images", "9", "--out", str(out)]))
    assert all(os.stat(out / f"shard-0000{i}.tokens.npy").st_mtime == 0 for i in (1, 2))
    assert np.array_equal(TokenDataset(out).tokens[:], tokens9)
    with pytest.raises(ValueError, match="another dataset"):
        tokenize.run(tokenize.parse_args([*args[:1], "procedural:12", *args[2:], "--num-images", "6", "--out", str(out)]))


def test_tokenize_skip_corrupt_skips_and_records(backbone_dir, tmp_path):
    """--skip-corrupt leaves an unreadable file out (no other image takes its slot) and lists it in
    the manifest; without the flag the same data fails with one clear line."""
    from PIL import Image
    data = tmp_path / "data"
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (SIZE, SIZE), (40 * i, 80 if c == "a" else 160, 20)).save(data / c / f"{i}.png")
    (data / "a" / "1.png").write_bytes(b"not a png")
    out = tmp_path / "tok"
    args = ["--data-path", str(data), "--backbone", str(backbone_dir), "--out", str(out), "--shard-size", "8",
            "--batch-size", "2", "--plan", "trajectory", "--num-steps", "2", "--codebook-size", "16", "--grid", "2x2"]
    with pytest.raises(SystemExit) as e:
        tokenize.main(args)
    assert e.value.code == 2
    tokenize.main(args + ["--skip-corrupt"])
    man = json.loads((out / "manifest.json").read_text())
    assert man["num_skipped"] == 1 and man["skipped_files"] == [os.path.join("a", "1.png")]
    labels = np.load(out / "shard-00000.labels.npy")
    assert len(labels) == 5 and sorted(labels.tolist()) == [0, 0, 1, 1, 1]
