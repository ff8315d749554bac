"""The token header (SPEC §8): the one seam between the tokenizer and everything that reads tokens.

A ``TokenHeader`` says how a token stream was made: codebook generator and seed, family, backbone and
autoencoder identities, backbone precision, shapes, grid, K per step, the plan (authoritative: it is
replayed, not recomputed), the initial state, the selection, and whether the backbone saw labels.
Token files, token-folder manifests and generator checkpoints store ``to_json()``; every reader
parses it with ``from_json`` (validated, versioned) and uses the typed fields. ``chain_spec()`` is
what decoding and the generator need besides the models.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import torch

from .codebooks import CODEBOOK_V1, GENERATOR_VERSIONS, V1_NOTE, Grid, VirtualCodebook

FORMAT_VERSION = 1          # of token files, manifests and this header


class TokenFormatError(ValueError):
    """A token file, shard or header that cannot be decoded safely."""


# header fields a decoder must match exactly, with how the mismatch is named (SPEC §6)
CHECKED = (("codebook", "codebook generator/seed"), ("family", "diffusion family"),
           ("backbone", "backbone (name + weights hash)"), ("autoencoder", "autoencoder (name + hash)"),
           ("image_shape", "image shape"), ("latent_shape", "latent shape"), ("grid", "grid"),
           ("codebook_sizes", "codebook size per step"), ("plan", "plan"), ("init", "init"),
           ("backbone_dtype", "backbone precision (--mixed-precision)"))


@dataclass
class TokenHeader:
    codebook: dict                  # {"generator_version": ..., "seed": ...}
    family: dict                    # Family.to_json()
    backbone: dict                  # {"name": ..., "sha256": ...}
    autoencoder: dict               # {"name": ..., "sha256": ...}
    backbone_dtype: str             # "float32" | "bfloat16" | "float16"
    image_shape: list
    latent_shape: list
    grid: list                      # [gh, gw]
    codebook_sizes: list            # K per chain step
    num_token_rows: int
    plan: dict                      # Plan.to_json()
    init: str
    selection: str = "l2"
    conditional: bool = False
    label: int | None = None
    encoder_environment: dict | None = None   # not checked; compared by decode_notes
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # fields of newer writers, kept verbatim

    # ---- (de)serialisation
    def to_json(self) -> dict:
        d = {"format_version": self.format_version, "codebook": self.codebook, "family": self.family,
             "backbone": self.backbone, "autoencoder": self.autoencoder, "backbone_dtype": self.backbone_dtype,
             "image_shape": self.image_shape, "latent_shape": self.latent_shape, "grid": self.grid,
             "codebook_sizes": self.codebook_sizes, "num_token_rows": self.num_token_rows, "plan": self.plan,
             "init": self.init, "selection": self.selection, "conditional": self.conditional, "label": self.label}
        if self.encoder_environment is not None:
            d["encoder_environment"] = self.encoder_environment
        return {**self.extra, **d}

    @classmethod
    def from_json(cls, d, source: str = "tokens") -> "TokenHeader":
        """Parse and validate; every defect is a ``TokenFormatError`` naming the field."""
        if isinstance(d, TokenHeader):
            return d
        if not isinstance(d, dict):
            raise TokenFormatError(f"{source}: the token header is not a JSON object")
        if d.get("format_version") != FORMAT_VERSION:
            raise TokenFormatError(f"{source}: token format version {d.get('format_version')} is not {FORMAT_VERSION}")
        known = {"format_version", "codebook", "family", "backbone", "autoencoder", "backbone_dtype", "image_shape",
                 "latent_shape", "grid", "codebook_sizes", "num_token_rows", "plan", "init", "selection",
                 "conditional", "label", "encoder_environment"}
        missing = [k for k in ("codebook", "family", "backbone", "autoencoder", "image_shape", "latent_shape", "grid",
                               "codebook_sizes", "num_token_rows", "plan", "init") if k not in d]
        if missing:
            raise TokenFormatError(f"{source}: the token header lacks {', '.join(missing)}: the file is damaged or "
                                   "not written by rdpm-gddcm")
        h = cls(**{k: d[k] for k in known if k in d and k != "backbone_dtype"},
                backbone_dtype=d.get("backbone_dtype", "float32"),
                extra={k: v for k, v in d.items() if k not in known})
        h.validate(source)
        return h

    def validate(self, source: str = "tokens"):
        def bad(what: str):
            raise TokenFormatError(f"{source}: token header field {what}: the file is damaged or from a newer version")
        if not (isinstance(self.grid, list) and len(self.grid) == 2 and all(isinstance(g, int) and g > 0 for g in self.grid)):
            bad(f"grid {self.grid!r} is not two positive integers")
        if not (isinstance(self.codebook_sizes, list) and all(isinstance(k, int) and k >= 2 for k in self.codebook_sizes)):
            bad(f"codebook_sizes {str(self.codebook_sizes)[:60]!r} is not a list of integers >= 2")
        if not (isinstance(self.codebook, dict) and isinstance(self.codebook.get("seed"), int)):
            bad(f"codebook {self.codebook!r} has no integer seed")
        if self.codebook_version not in GENERATOR_VERSIONS:
            bad(f"codebook generator {self.codebook_version!r} is not one of {', '.join(GENERATOR_VERSIONS)}")
        for key in ("image_shape", "latent_shape"):
            v = getattr(self, key)
            if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, int) and x > 0 for x in v)):
                bad(f"{key} {v!r} is not three positive integers")
        if not isinstance(self.plan, dict) or "steps" not in self.plan or "kind" not in self.plan:
            bad("plan has no kind and steps")
        want_rows = len(self.plan["steps"]) + int(self.init == "codebook")
        if self.num_token_rows != want_rows:
            bad(f"num_token_rows {self.num_token_rows!r} is not the plan's {want_rows}")
        if self.backbone_dtype not in ("float32", "bfloat16", "float16"):
            bad(f"backbone_dtype {self.backbone_dtype!r} is unknown")
        if self.label is not None and not isinstance(self.label, int):
            bad(f"label {self.label!r} is not an integer")

    # ---- derived
    @property
    def codebook_version(self) -> str:
        return self.codebook.get("generator_version", CODEBOOK_V1)    # files from before v2 did not record it

    @property
    def codebook_seed(self) -> int:
        return self.codebook["seed"]

    @property
    def codebook_size(self) -> int:
        return self.codebook_sizes[0]

    @property
    def image_size(self) -> int:
        return self.image_shape[-1]

    @property
    def num_blocks(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def has_init_token(self) -> bool:
        return self.init == "codebook"

    @property
    def precision_mode(self) -> str:
        """The ``--mixed-precision`` mode that replays ``backbone_dtype``."""
        from .precision import MODE_OF_DTYPE_NAME
        return MODE_OF_DTYPE_NAME[self.backbone_dtype]

    def chain_spec(self):
        """The ChainSpec the tokens were made with (plan as stored, codebooks, grid, K, init)."""
        from .chain import ChainSpec
        from .plans import Plan
        latent = tuple(self.latent_shape)
        codebook = VirtualCodebook(self.codebook_seed, math.prod(latent), version=self.codebook_version)
        return ChainSpec(Plan.from_json(self.plan), codebook, Grid(latent, *self.grid), self.codebook_size, init=self.init)

    # A token index means the same codebook vector at the same chain step whichever backbone of the family
    # chose it: tokens of a fine-tuned backbone (other weights, or run at another precision) are the same
    # tokenizer's, so a generator of one may continue on (rdpm-train --init-from) or sample with the other
    # (generator_card.py --retune). Exact decoding, what those fields guard, is another matter.
    FINE_TUNE_FIELDS = ("backbone", "backbone_dtype")

    def mismatch(self, other: "TokenHeader", ignore: tuple[str, ...] = ()) -> tuple[str, object, object] | None:
        """The first checked field (but those in ``ignore``) where ``other`` (the decoder's header) differs:
        (what, ours, theirs)."""
        import json
        mine, theirs = self.to_json(), other.to_json()
        for key, what in CHECKED:
            if key in ignore:
                continue
            a, b = mine.get(key), theirs.get(key)
            if key in ("backbone", "autoencoder"):                      # identity is the weights' hash
                a, b = (a or {}).get("sha256"), (b or {}).get("sha256")
            if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
                return what, a, b
        return None


def encoder_environment(device) -> dict:
    """What, besides the header's checked fields, decides the last bits of the backbone's outputs."""
    dev = torch.device(device).type
    env = {"torch": torch.__version__, "device": dev}
    if dev == "cpu":
        env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    elif dev == "cuda":
        env["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
    return env


def decode_notes(header: TokenHeader, device="cpu") -> list[str]:
    """Warnings for a decode that may not reproduce the encoder bit for bit (printed by the codec)."""
    notes = []
    if header.codebook_version == CODEBOOK_V1:
        notes.append(V1_NOTE)
    enc, here = header.encoder_environment, encoder_environment(device)
    if enc:
        diff = [f"{k} {enc.get(k)!r} here {here.get(k)!r}" for k in sorted(set(enc) | set(here)) if enc.get(k) != here.get(k)]
        if diff:
            notes.append("encoded with " + "; ".join(diff) + ": network outputs can differ in the last bits, so the "
                         "decoded image may differ slightly from the encoder's reconstruction")
    return notes


def replay_precision(header: TokenHeader, device="cpu") -> str:
    """The ``--mixed-precision`` mode that replays the header's ``backbone_dtype`` exactly (decoding
    must run the backbone as the encoder did), with a note on stderr where that precision is slow here."""
    from .precision import cpu_native_bf16
    mode = header.precision_mode
    if mode == "bf16" and torch.device(device).type == "cpu":
        native, why = cpu_native_bf16()
        if not native:
            print(f"note: these tokens were made with a bf16 backbone and decoding replays it exactly; {why}, "
                  "so decoding will be slow here", file=sys.stderr)
    return mode
