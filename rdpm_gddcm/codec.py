"""``rdpm-codec``: compress one image to a gDDCM token file and back (SPEC §8).

    rdpm-codec encode IMAGE -o FILE --backbone DIR [tokenizer flags]
    rdpm-codec decode FILE -o IMAGE.png --backbone DIR

The decoder rebuilds the tokenizer from the file's header (plan, grid, K, init, seed) and refuses
a file made with another backbone, autoencoder or format version.
"""
from __future__ import annotations

import argparse
import sys

import torch

from . import cli
from .header import decode_notes, replay_precision
from .token_io import read_token_file, write_token_file
from .tokenizer import Tokenizer, add_model_args, add_tokenizer_args, load_models, tokenizer_config_from_args


def parse_args(argv=None):
    p = cli.ArgumentParser(prog="rdpm-codec", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode", help="image -> token file", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("input", help="image file (any PIL format; resized + center-cropped)")
    e.add_argument("-o", "--output", required=True, help="token file to write")
    e.add_argument("--label", type=int, default=None, help="class label (stored; used with --conditional)")
    add_model_args(e)
    add_tokenizer_args(e)
    d = sub.add_parser("decode", help="token file -> PNG", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("input", help="token file written by `rdpm-codec encode`")
    d.add_argument("-o", "--output", required=True, help="PNG to write")
    add_model_args(d)
    return p.parse_args(argv)


def main(argv=None):
    from .cli import run_command
    a = parse_args(argv)
    return run_command("rdpm-codec", lambda: run(a))


def run(a):
    from .data import load_image, save_images
    if a.cmd == "encode":
        backbone, ae, size = load_models(a.backbone, a.autoencoder, a.image_size, a.device, a.mixed_precision)
        cfg = tokenizer_config_from_args(a)
        if cfg.conditional and a.label is None:
            raise ValueError("--conditional needs --label N (the image's class)")
        tok = Tokenizer(backbone, ae, cfg, size, a.device)
        img = load_image(a.input, size)[None]
        labels = None if a.label is None else torch.tensor([a.label])
        tokens, rec, _ = tok.encode(img, labels)
        write_token_file(a.output, tok.header(a.label), tokens[0].cpu().numpy())
        print(f"wrote {a.output}: {tok.bits_per_image} bits ({tok.bpp:.4f} bpp)")
    else:
        header, tokens = read_token_file(a.input)
        replay_precision(header, a.device)          # notes where the header's precision is slow here
        tok = Tokenizer.from_header(header, a.backbone, a.autoencoder, a.device)
        for note in decode_notes(header, a.device):
            print(f"note: {note}", file=sys.stderr)
        labels = None if header.label is None else torch.tensor([header.label])
        img = tok.decode(torch.as_tensor(tokens)[None], labels)
        save_images(img.cpu(), [a.output])
        print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
