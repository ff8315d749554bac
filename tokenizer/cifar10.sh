#!/usr/bin/env bash
# CIFAR-10 tokens with gDDCM (the generator's training and held-out tokens) and the tokenizer's
# README tables (reconstruction PSNR/LPIPS rows of the Table 1 analogue, the 2D-grid, K and p sweeps,
# the tokens10 rows, and rFID). train/cifar10.sh runs the tokenize stage; the tables come from
# the shipped backbones.
#
#   DATA=../shared/data/cifar10 bash tokenizer/cifar10.sh          # tokens (~2 h on 2 CPU cores)
#   STAGES="tables" bash tokenizer/cifar10.sh                      # the tokenizer tables
#   DRY_RUN=1 bash tokenizer/cifar10.sh                            # print the commands only
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10}
RUNS=${RUNS:-runs}
STAGES=${STAGES:-"tokenize"}
PY=${PY:-python}
TAEF2=${TAEF2:-../shared/weights/taef2}
# tokens are made with the shipped backbones (their weights hash is in every token header)
BACKBONE=${BACKBONE:-assets/cifar10-taef2-edm-long}
BACKBONE_PIXELS=${BACKBONE_PIXELS:-assets/cifar10-pixels-vp}
# the previous (pixel-space) generator was trained on the first TOKEN_IMAGES train images (class-interleaved)
TOKEN_IMAGES=${TOKEN_IMAGES:-8192}
# where the latent tokens go, and how many train images (all by default; a smaller N is the class-balanced
# first N, and a later larger N keeps every finished shard)
TOKENS=${TOKENS:-$RUNS/tokens-cifar10-edm-long-8x8}
VAL_TOKENS=${VAL_TOKENS:-$RUNS/tokens-cifar10-val-edm-long-8x8}
LATENT_IMAGES=${LATENT_IMAGES:-50000}

run() { echo "+ $*"; if [ -z "${DRY_RUN:-}" ]; then "$@"; fi; }
want() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }

if want tokenize; then    # the shipped generator's tokens: all 50,000 train images (README: 'Choosing the
  # generator's tokens'); ~4.9 min per 1,024-image shard per process here (6.7 before rdpm-tokenize stopped
  # decoding every reconstruction; both with a low-priority job alongside): ~2 h with 2 CPU processes
  # (prefix `accelerate launch --multi_gpu --num_processes 2`; the shards do not depend on it)
  LATENT=(--backbone "$BACKBONE" --autoencoder "taef2:$TAEF2" --plan trajectory --p 0.7 --num-steps 10 --grid 8x8
          --codebook-size 4096 --selection dot --conditional --save-states --mixed-precision "${TOKEN_PRECISION:-auto}"
          ${TOKEN_PLAN_ARGS:-})   # e.g. TOKEN_PLAN_ARGS="--t-end 0.5 --final-steps 3 --final-solver heun" (README: 'A token
                                  # plan with more maps at mid noise')
  run $PY -m rdpm_gddcm.tokenize --data-path "$DATA/train" --out "$TOKENS" --num-images "$LATENT_IMAGES" "${LATENT[@]}"
  run $PY -m rdpm_gddcm.tokenize --data-path "$DATA/val" --out "$VAL_TOKENS" --num-images 500 "${LATENT[@]}"
fi

if want tokenize-pixels; then   # the previous generator's (assets/cifar10-generator-pixels); ~0.22 s/image on 2 cores
  TOKFLAGS=(--plan trajectory --p 0.5 --num-steps 10 --grid 8x8 --codebook-size 4096 --selection dot --conditional
            --mixed-precision bf16)
  run $PY -m rdpm_gddcm.tokenize --data-path "$DATA/train" --backbone "$BACKBONE_PIXELS" \
    --out "$RUNS/tokens-cifar10-vp-8x8" --num-images "$TOKEN_IMAGES" --save-states "${TOKFLAGS[@]}"
  run $PY -m rdpm_gddcm.tokenize --data-path "$DATA/val" --backbone "$BACKBONE_PIXELS" \
    --out "$RUNS/tokens-cifar10-val-8x8" --num-images 500 --save-states "${TOKFLAGS[@]}"
fi

if want tables; then      # each script resumes rows already in its JSON
  for suite in table1 grid2d ksweep tokens10 psweep; do
    run $PY benchmarks/bench_fidelity.py --suite "$suite" --num-images 128 --out "benchmarks/results/fidelity_$suite.json"
  done
  run $PY benchmarks/bench_rfid.py --num-images 1000 --out benchmarks/results/rfid.json
fi
