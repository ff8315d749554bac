#!/usr/bin/env bash
# The CIFAR-10 recipe: reproduces every shipped checkpoint under assets/ from the ImageFolder copy of
# CIFAR-10 (DATA/train, DATA/val). The commands are the ones the cards record; wall times are the
# ones measured on this project's 2-core CPU (each card has its own). On GPUs, prefix the training
# and tokenizing commands with `accelerate launch --multi_gpu --num_processes K` (same scripts).
#
#   DATA=../shared/data/cifar10 bash train/cifar10.sh            # everything but the long backbone run (~5 h on 2 CPU cores)
#   STAGES="tokenize generator" bash train/cifar10.sh            # only some stages
#   DRY_RUN=1 bash train/cifar10.sh                              # print the commands only
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10}
TAEF2=${TAEF2:-../shared/weights/taef2}
RUNS=${RUNS:-runs}
STAGES=${STAGES:-"backbones classifier tokenize generator init-prior"}
# the previous (pixel-space) generator, assets/cifar10-generator-pixels: its tokens' image count and steps
TOKEN_IMAGES=${TOKEN_IMAGES:-8192}
GEN_STEPS=${GEN_STEPS:-2800}
PY=${PY:-python}
# the generator-isotropic and generator-history stages continue this generator (the generator stage's run)
GEN_INIT=${GEN_INIT:-$RUNS/gen-latent}
# tokens are made with the shipped backbones (their weights hash is in every token header); the latent
# EDM backbone is the long run's (README: 'The long backbone run'; its CARD.md has the command and how
# it was continued over several sessions from assets/backbone-long-run)
BACKBONE=${BACKBONE:-assets/cifar10-taef2-edm-long}
BACKBONE_PIXELS=${BACKBONE_PIXELS:-assets/cifar10-pixels-vp}
# the latent generators' tokens (the tokenize stage writes them; LATENT_IMAGES: how many train images)
TOKENS=${TOKENS:-$RUNS/tokens-cifar10-edm-long-8x8}
VAL_TOKENS=${VAL_TOKENS:-$RUNS/tokens-cifar10-val-edm-long-8x8}
LATENT_IMAGES=${LATENT_IMAGES:-50000}

run() { echo "+ $*"; if [ -z "${DRY_RUN:-}" ]; then "$@"; fi; }
want() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }

if want backbones; then   # 69 / 68 / 20 min on 1 CPU thread (assets/*/CARD.md)
  for fam in vp flow; do
    run $PY -m rdpm_gddcm.train_backbone --data-path "$DATA/train" --image-size 32 --family $fam --model unet-cpu \
      --results-dir "$RUNS/cifar10-pixels-$fam" --max-steps 1000 --global-batch-size 64 --lr 5e-4 --warmup-steps 50 \
      --mixed-precision bf16 --ckpt-every 200 --sample-every 500 --log-every 50
  done
  run $PY -m rdpm_gddcm.train_backbone --data-path "$DATA/train" --image-size 64 --num-images 10000 --no-hflip \
    --autoencoder "taef2:$TAEF2" --family ve --model unet-latent-cpu --results-dir "$RUNS/cifar10-taef2-edm" \
    --max-steps 1500 --global-batch-size 64 --lr 5e-4 --warmup-steps 50 --mixed-precision bf16 --ckpt-every 250 \
    --sample-every 750 --log-every 50
fi

if want backbone-decay; then   # not in the default STAGES: a learning-rate decay phase fine-tuned from the long run's
  # EMA (BACKBONE): fresh AdamW, warm-up, cosine from 5e-4 to a tenth of it over 3,000 steps of 64 (README: 'A
  # learning-rate decay phase'); each checkpoint's EMA is scored by benchmarks/bench_backbone_scaling.py. The 2.09M
  # row: BACKBONE=runs/backbone-long/export/step_0032699 (rdpm-train-backbone --results-dir runs/backbone-long
  # --export-checkpoint latest) DECAY_RUN=runs/backbone-decay-2m, the 2.85M row the same with step_0044473 and
  # DECAY_RUN=runs/backbone-decay-3m (shipped as assets/cifar10-taef2-edm-3m: benchmarks/backbone_card.py, command in
  # its CARD.md); a copy of the long run's latent cache in DECAY_RUN skips the encoding
  run $PY -m rdpm_gddcm.train_backbone --data-path "$DATA/train" --image-size 64 --autoencoder "taef2:$TAEF2" \
    --family edm --model unet-latent-cpu --results-dir "${DECAY_RUN:-$RUNS/backbone-decay}" --init-from "$BACKBONE" --max-steps 3000 \
    --warmup-steps 50 --global-batch-size 64 --lr 5e-4 --ckpt-every 500 --keep-checkpoints 10 --sample-every 0 \
    --log-every 100 --global-seed 0
fi

if want classifier; then  # the CPU proxy behind "CIFAR-feature FD" / "class accuracy" (33 min, 1 thread)
  run $PY -m rdpm_gddcm.classifier --data-path "$DATA" --epochs 9 --batch-size 512 --lr 0.4 --widths 32,64,128,256 \
    --mixed-precision bf16 --num-threads 1 --out "$RUNS/cifar10-classifier"
fi

if want tokenize; then    # the generators' train and val tokens (tokenizer/cifar10.sh)
  run env DATA="$DATA" RUNS="$RUNS" TAEF2="$TAEF2" BACKBONE="$BACKBONE" PY="$PY" TOKENS="$TOKENS" VAL_TOKENS="$VAL_TOKENS" \
    LATENT_IMAGES="$LATENT_IMAGES" TOKEN_PRECISION="${TOKEN_PRECISION:-auto}" TOKEN_PLAN_ARGS="${TOKEN_PLAN_ARGS:-}" STAGES=tokenize \
    bash tokenizer/cifar10.sh
fi

if want generator; then   # the shipped generator: gen-mini over the latent tokens of all 50,000 train images, 2
  # CPU processes (accelerate launch --multi_gpu --num_processes 2 here); its card has the measured wall time.
  # The same from scratch over edm-3m's tokens (README: "Re-bound to edm-3m"): STAGES="tokenize generator"
  # BACKBONE=assets/cifar10-taef2-edm-3m TOKENS=runs/tokens-cifar10-edm-3m-8x8 VAL_TOKENS=runs/tokens-cifar10-val-edm-3m-8x8
  # GEN_RUN=runs/gen-latent-3m TOKEN_PRECISION=no (fp32 tokens, as made for it); GEN_ARGS="--run-state DIR --stop-after-minutes M" spreads it over several sittings
  run $PY -m rdpm_gddcm.train_generator --tokens "$TOKENS" --results-dir "${GEN_RUN:-$RUNS/gen-latent}" \
    --model gen-mini --head-rank 4 --max-steps 3300 --global-batch-size 64 --lr 1e-3 --warmup-steps 100 \
    --log-every 50 --ckpt-every 250 --sample-every 0 --backbone "$BACKBONE" \
    --val-tokens "$VAL_TOKENS" ${GEN_ARGS:-}
fi

if want generator-xs; then   # an ablation, not in the default STAGES: the next size up (gen-xs, 7.31M) on the same
  # tokens, same batch and LR, from scratch; 3,800 steps x 64, ~1 h 45 min as 2 CPU processes here
  # (README: Generator size)
  run $PY -m rdpm_gddcm.train_generator --tokens "$TOKENS" --results-dir "$RUNS/gen-xs" \
    --model gen-xs --head-rank 4 --max-steps 3800 --global-batch-size 64 --lr 1e-3 --warmup-steps 100 \
    --log-every 25 --ckpt-every 200 --sample-every 0 --backbone "$BACKBONE" \
    --val-tokens "$VAL_TOKENS"
fi

if want generator-isotropic; then   # an ablation, not in the default STAGES: continue the generator stage's weights
  # with the isotropic head term added (rdpm-train --init-from: a new run, fresh optimizer and cosine schedule);
  # 2,500 steps x 64, ~50 min as 2 CPU processes here. Lower held-out CE, worse FID (README, Design)
  run $PY -m rdpm_gddcm.train_generator --tokens "$TOKENS" --results-dir "$RUNS/gen-latent-iso" \
    --init-from "$GEN_INIT" --model gen-mini --head-rank 4 --head-isotropic --max-steps 2500 --global-batch-size 64 \
    --lr 5e-4 --warmup-steps 100 --log-every 50 --ckpt-every 250 --sample-every 0 --backbone "$BACKBONE" \
    --val-tokens "$VAL_TOKENS"
fi

if want generator-history; then   # continue the generator stage's weights with the token-history input added
  # (--history-maps 10: every earlier map's chosen codebook vectors; rdpm-train --init-from adds the zero-initialised
  # layer: a new run, fresh optimizer and cosine schedule); 2,500 steps x 64, 61 min as 2 CPU processes here. An
  # ablation, not in the default STAGES: lower held-out CE, no better FID (README, Token history)
  run $PY -m rdpm_gddcm.train_generator --tokens "$TOKENS" --results-dir "$RUNS/gen-latent-hist" \
    --init-from "$GEN_INIT" --model gen-mini --head-rank 4 --history-maps 10 --max-steps 2500 --global-batch-size 64 \
    --lr 5e-4 --warmup-steps 100 --log-every 50 --ckpt-every 250 --sample-every 0 --backbone "$BACKBONE" \
    --val-tokens "$VAL_TOKENS"
fi

if want generator-longer; then   # an ablation, not in the default STAGES: continue the generator stage's export with
  # the same input and head (rdpm-train --init-from: a new run, fresh optimizer and cosine schedule), 1,200 more steps
  # x 64 at lr 5e-4 on the tokens of the first 25,600 train images (the tokenize stage's command with --num-images
  # 25600), as 2 CPU processes here (README: the main FID table). GEN_INIT=assets/cifar10-generator (the generator
  # stage's export); tokens at another backbone precision than GEN_INIT's are accepted
  run $PY -m rdpm_gddcm.train_generator --tokens "$TOKENS" --results-dir "$RUNS/gen-latent-longer" \
    --init-from "$GEN_INIT" --model gen-mini --head-rank 4 --max-steps 1200 --global-batch-size 64 \
    --lr 5e-4 --warmup-steps 100 --log-every 50 --ckpt-every 250 --sample-every 0 --backbone "$BACKBONE" \
    --val-tokens "$VAL_TOKENS"
fi

if want generator-two-pass; then   # continue the generator stage's weights with two-pass maps (--two-pass: each map
  # drawn twice, the second pass given one checkerboard half of the first; rdpm-train --init-from adds the
  # zero-initialised layer: a new run, fresh optimizer and cosine schedule). An ablation, not in the default STAGES;
  # measured on the tokens of the first 25,600 train images (the tokenize stage's command with --num-images 25600;
  # a later --num-images 50000 extends them), GEN_INIT=assets/cifar10-generator (the generator stage's export),
  # 2,500 steps x 64 as 2 CPU processes here (README: Two-pass maps)
  run $PY -m rdpm_gddcm.train_generator --tokens "$TOKENS" --results-dir "$RUNS/gen-latent-2pass" \
    --init-from "$GEN_INIT" --model gen-mini --head-rank 4 --two-pass --max-steps 2500 --global-batch-size 64 \
    --lr 5e-4 --warmup-steps 100 --log-every 50 --ckpt-every 250 --sample-every 0 --backbone "$BACKBONE" \
    --val-tokens "$VAL_TOKENS"
fi

if want init-prior; then   # the shipped generator's Gaussian init prior (README: A joint init map): fitted on the
  # latents of the first 10,000 train images (class-interleaved, 1,000 per class) through its autoencoder, written
  # into the asset as init_prior.safetensors (INIT_PRIOR_CKPT: another generator directory); 7 minutes here beside two other jobs
  run $PY -m rdpm_gddcm.init_prior --ckpt "${INIT_PRIOR_CKPT:-assets/cifar10-generator}" --data-path "$DATA/train" \
    --num-images 10000 --rank 256 --backbone assets/cifar10-taef2-edm-3m --force
fi

if want generator-masked; then   # not in the default STAGES: the masked-pass generator (--map-passes 4: each map
  # drawn in four passes, each keeping the most confident blocks; rdpm-train --init-from adds the zero-initialised
  # layer: a new run, fresh optimizer and cosine schedule) continued from GEN_INIT. Measured over the decayed
  # backbone: BACKBONE=assets/cifar10-taef2-edm-2m, its tokens of the first 25,600 train images
  # (TOKENS=runs/tokens-cifar10-edm-2m-8x8 VAL_TOKENS=runs/tokens-cifar10-val-edm-2m-8x8 LATENT_IMAGES=25600,
  # the tokenize stage), GEN_INIT=assets/cifar10-generator (the generator stage's export: its tokens' backbone is
  # the one this backbone was fine-tuned from), as 2 CPU processes here (README: Masked passes). Over edm-3m:
  # BACKBONE=assets/cifar10-taef2-edm-3m, TOKENS/VAL_TOKENS its tokens of all 50,000 train and 500 val images,
  # MASKED_RUN=runs/gen-masked-3m, the same GEN_INIT (README: Within a map)
  run $PY -m rdpm_gddcm.train_generator --tokens "$TOKENS" --results-dir "${MASKED_RUN:-$RUNS/gen-latent-masked}" \
    --init-from "$GEN_INIT" --model gen-mini --head-rank 4 --map-passes 4 --max-steps "${MASKED_STEPS:-1500}" \
    --global-batch-size 64 --lr 5e-4 --warmup-steps 100 --log-every 50 --ckpt-every 250 --sample-every 0 \
    --backbone "$BACKBONE" --val-tokens "$VAL_TOKENS"
fi

if want tokenize-pixels; then
  run env DATA="$DATA" RUNS="$RUNS" TOKEN_IMAGES="$TOKEN_IMAGES" BACKBONE_PIXELS="$BACKBONE_PIXELS" PY="$PY" \
    STAGES=tokenize-pixels bash tokenizer/cifar10.sh
fi

if want generator-pixels; then   # gen-mini, fp32 (bf16 autocast is slower on CPUs without bf16 instructions)
  run $PY -m rdpm_gddcm.train_generator --tokens "$RUNS/tokens-cifar10-vp-8x8" --results-dir "$RUNS/cifar10-generator" \
    --model gen-mini --head-rank 4 --max-steps "$GEN_STEPS" --global-batch-size 64 --lr 1e-3 --warmup-steps 100 \
    --mixed-precision no --log-every 50 --ckpt-every 500 --sample-every 1000 --backbone "$BACKBONE_PIXELS" \
    --val-tokens "$RUNS/tokens-cifar10-val-8x8"
fi
