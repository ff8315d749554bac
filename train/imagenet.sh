#!/usr/bin/env bash
# ImageNet 256x256: gDDCM token maps from a frozen DiT-XL/2 + SD-VAE, then the RDPM-style generator.
#
#   DATA=/data/imagenet/train NUM_PROCESSES=8 bash train/imagenet.sh     # fetch weights first (below)
#   DRY_RUN=1 bash train/imagenet.sh                                      # only print the commands
#   STAGES=fetch bash train/imagenet.sh                                   # download the DiT pipeline
#
# Stages (STAGES, space-separated; default "tokenize train"):
#   fetch     `hf download facebook/DiT-XL-2-256` into $WEIGHTS (transformer/, vae/ = stabilityai/sd-vae-ft-ema,
#             scheduler/). Needs internet; run it once where there is some. Loading from that local
#             directory keeps every node off the hub (BACKBONE=diffusers-dit:facebook/DiT-XL-2-256, a hub id,
#             also loads: its transformer/, scheduler/ and vae/ are found, as in a local pipeline directory).
#   tokenize  accelerate launch -m rdpm_gddcm.tokenize: every image -> 11 token maps (the init map + N=10
#             trajectory steps at p=0.5) of GRIDxGRID blocks, K entries each, plus the per-step states and
#             x̂0 (fp16) so that training never calls the backbone. Shards are resumable: re-run the stage
#             after an interruption; the shards do not depend on NUM_PROCESSES.
#   train     accelerate launch -m rdpm_gddcm.train_generator: the generator on those shards, bf16, EMA,
#             checkpoints every CKPT_EVERY steps, resumed with --resume-from-checkpoint latest (a fresh
#             run when there is no checkpoint yet). Writes $RUN/generator.safetensors + generator.json.
#
# Choices: GRID=16x16 blocks of the 4x32x32 latent (2x2x4 = 16 values per block: one block per DiT-XL/2
# patch, 256 positions per token map); K=4096 (12 bits, uint16 shards); CONDITIONAL=1 calls the DiT with
# each image's class (its x̂0 is better than the null class's; sampling then passes the class too).
# GRID=8x8 is the 4x cheaper alternative (64 positions; same states cache).
#
# Costs: benchmarks/results/imagenet_costs.json, reproduced by
#   python benchmarks/bench_imagenet_costs.py --out benchmarks/results/imagenet_costs.json
# MEASURED (CPU time, 1 thread of a shared 2-core CPU, random weights of the real configurations):
#   DiT-XL/2 forward 2.9 s fp32 / 8.5 s bf16 (237 GFLOP) per image per step; SD-VAE encode 3.1 s
#   (273 GFLOP); gen-l training forward+backward 6.5 s (484 GFLOP) per sequence; JPEG decode 7 ms.
# COMPUTED from those: tokenizing = 11 DiT calls + 1 encode = 35 s per image, 12,500 core-hours for
#   ImageNet at fp32. GPU (NOT measured: FLOPs at an assumed 40% of the H100 bf16 peak, 8 GPUs):
#   tokenizing ~0.3 h of GPU work, ~0.6 h with each process's serial JPEG decoding; training
#   400k steps x 256 ~4.4 h of GPU FLOPs (data loading from the states cache not included).
# Exact cache sizes for the defaults (1,281,167 images, 1252 shards of 1024):
#   tokens    11 x 256 x 2 B = 5,632 B/image  -> 7.2 GB   (GRID=8x8: 1,408 B/image -> 1.8 GB)
#   labels    8 B/image                       -> 10 MB
#   states+x̂0 2 x 10 x 4x32x32 x 2 B = 160 KiB/image -> 210 GB (SAVE_STATES=1; same for any grid)
#   training RAM: rdpm_gddcm.token_io.TokenDataset memory-maps the token shards (uint16) and reads
#             each batch's rows on demand, so the 7.2 GB are shared page cache, not per-process copies.
set -euo pipefail

DATA=${DATA:-data/imagenet/train}            # ImageFolder: DATA/<wnid>/*.JPEG (1000 classes, sorted = DiT's labels)
WEIGHTS=${WEIGHTS:-weights}                  # where the fetch stage puts facebook/DiT-XL-2-256
BACKBONE=${BACKBONE:-diffusers-dit:$WEIGHTS/DiT-XL-2-256}
AUTOENCODER=${AUTOENCODER:-hf:$WEIGHTS/DiT-XL-2-256}    # its vae/ (sd-vae-ft-ema); hf:stabilityai/sd-vae-ft-ema also works
OUT=${OUT:-runs/imagenet}
TOKENS=${TOKENS:-$OUT/tokens-dit-xl2-p0.5-n10}
RUN=${RUN:-$OUT/gen}
NUM_PROCESSES=${NUM_PROCESSES:-8}            # one per GPU
MIXED_PRECISION=${MIXED_PRECISION:-bf16}     # backbone autocast (recorded in the token header) and training
IMAGE_SIZE=${IMAGE_SIZE:-256}
NUM_STEPS=${NUM_STEPS:-10}                   # N token maps per image (+1 init map)
P=${P:-0.5}                                  # trajectory backtrack parameter (0.5 = reverse SDE)
GRID=${GRID:-16x16}                          # must divide the 32x32 latent
CODEBOOK_SIZE=${CODEBOOK_SIZE:-4096}         # K
CODEBOOK_SEED=${CODEBOOK_SEED:-0}
SELECTION=${SELECTION:-l2}
CONDITIONAL=${CONDITIONAL:-1}
SAVE_STATES=${SAVE_STATES:-1}
TOKENIZE_BATCH=${TOKENIZE_BATCH:-64}         # images per chain run (part of the result: keep it fixed)
SHARD_SIZE=${SHARD_SIZE:-1024}
MODEL=${MODEL:-gen-l}                        # gen-b (~130M) or gen-l (~457M at 16x16)
GLOBAL_BATCH=${GLOBAL_BATCH:-256}            # token sequences per optimizer step, all processes
MAX_STEPS=${MAX_STEPS:-400000}
LR=${LR:-1e-4}
WARMUP_STEPS=${WARMUP_STEPS:-5000}
EMA_DECAY=${EMA_DECAY:-0.9999}
CKPT_EVERY=${CKPT_EVERY:-10000}
LOG_EVERY=${LOG_EVERY:-100}
STAGES=${STAGES:-tokenize train}
DRY_RUN=${DRY_RUN:-0}
ACCELERATE=${ACCELERATE:-accelerate}
HF=${HF:-hf}

RECIPE=train/imagenet.sh
# die, run (honours DRY_RUN) and launch (accelerate launch -m ...), shared with the other recipe
source "$(dirname "${BASH_SOURCE[0]}")/recipe_lib.sh"

stage_fetch() {
    run "$HF" download facebook/DiT-XL-2-256 --local-dir "$WEIGHTS/DiT-XL-2-256"
}

stage_tokenize() {
    if [[ "$DRY_RUN" != 1 ]]; then
        [[ -d "$DATA" ]] || die "DATA=$DATA is not a directory (the ImageNet train ImageFolder)"
    fi
    local extra=()
    if [[ "$SAVE_STATES" == 1 ]]; then extra+=(--save-states); fi
    if [[ "$CONDITIONAL" == 1 ]]; then extra+=(--conditional); fi
    launch rdpm_gddcm.tokenize --data-path "$DATA" --out "$TOKENS" \
        --backbone "$BACKBONE" --autoencoder "$AUTOENCODER" --image-size "$IMAGE_SIZE" \
        --mixed-precision "$MIXED_PRECISION" \
        --plan trajectory --p "$P" --num-steps "$NUM_STEPS" --grid "$GRID" \
        --codebook-size "$CODEBOOK_SIZE" --codebook-seed "$CODEBOOK_SEED" --selection "$SELECTION" --init codebook \
        --batch-size "$TOKENIZE_BATCH" --shard-size "$SHARD_SIZE" ${extra[@]+"${extra[@]}"}
}

stage_train() {
    if [[ "$DRY_RUN" != 1 ]]; then
        [[ -f "$TOKENS/manifest.json" ]] || die "no $TOKENS/manifest.json: run the tokenize stage first"
    fi
    local extra=()
    if [[ "$SAVE_STATES" != 1 ]]; then
        # without cached states the trainer replays the chain through the backbone (N DiT calls per example)
        extra+=(--backbone "$BACKBONE" --autoencoder "$AUTOENCODER")
    fi
    # --sample-every 0 and no --backbone: the trainer's end-of-run grid would draw 4 images for each of
    # the 1000 classes; use sample/imagenet.sh instead
    launch rdpm_gddcm.train_generator --tokens "$TOKENS" --results-dir "$RUN" --model "$MODEL" \
        --global-batch-size "$GLOBAL_BATCH" --max-steps "$MAX_STEPS" --lr "$LR" --warmup-steps "$WARMUP_STEPS" \
        --ema-decay "$EMA_DECAY" --mixed-precision "$MIXED_PRECISION" --ckpt-every "$CKPT_EVERY" \
        --log-every "$LOG_EVERY" --sample-every 0 --resume-from-checkpoint latest ${extra[@]+"${extra[@]}"}
}

for stage in $STAGES; do
    case "$stage" in
        fetch) stage_fetch ;;
        tokenize) stage_tokenize ;;
        train) stage_train ;;
        *) die "unknown stage '$stage' (use fetch, tokenize, train)" ;;
    esac
done
