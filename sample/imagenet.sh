#!/usr/bin/env bash
# ImageNet 256x256 FID-50K of a generator trained by train/imagenet.sh.
#
#   NUM_PROCESSES=8 bash sample/imagenet.sh                 # sample 50,000 images, then FID/IS
#   DRY_RUN=1 bash sample/imagenet.sh                       # only print the commands
#   STAGES=fetch bash sample/imagenet.sh                    # download the reference batch + Inception weights
#
# Stages (STAGES, space-separated; default "sample eval"):
#   fetch   ADM's reference batch VIRTUAL_imagenet256_labeled.npz (Dhariwal & Nichol's evaluator: 10,000
#           images in arr_0 plus the Inception statistics mu/sigma of the whole ImageNet train set) and
#           torch-fidelity's Inception weights, with curl. Needs internet; run it once where there is some.
#   sample  accelerate launch -m rdpm_gddcm.sample: 50,000 class-balanced samples (50 per class), each
#           image's randomness from (GLOBAL_SEED, image index) only, so any NUM_PROCESSES / batch size gives
#           the same images. Writes $SAMPLES/{i:06d}.png, samples.npz (ADM format), grid.png,
#           sample_config.json. It does not resume: an interrupted run samples everything again.
#   eval    rdpm-eval: FID against the reference batch's mu/sigma (FID-50K) and IS, torch-fidelity's
#           Inception (a port of the TF graph ADM used), written to $SAMPLES/metrics.json.
#
# Per sample: N+1 = 11 DiT-XL/2 calls, 11 token maps x 2 generator calls (CFG), 11 Gumbel draws of
# GRID blocks x K on the CPU, one VAE decode: 6.8 TFLOP per image with gen-l at 16x16 (counted).
# Measured on 1 CPU thread (benchmarks/results/imagenet_costs.json): 80 s per image in fp32, 1,110
# core-hours for 50,000. On GPUs (NOT measured: FLOPs at an assumed 40% of the H100 bf16 peak, 8 GPUs)
# the FLOPs take ~0.03 h, but each process draws the Gumbel noise on its CPU (15 ms per token map per
# image, measured) and writes PNGs serially: ~0.34 h in all. Disk: 50,000 PNGs + samples.npz (9.8 GB).
set -euo pipefail

OUT=${OUT:-runs/imagenet}
RUN=${RUN:-$OUT/gen}                         # generator run dir (generator.json + generator.safetensors, EMA)
WEIGHTS=${WEIGHTS:-weights}
BACKBONE=${BACKBONE:-diffusers-dit:$WEIGHTS/DiT-XL-2-256}   # the one the tokens were made with
AUTOENCODER=${AUTOENCODER:-hf:$WEIGHTS/DiT-XL-2-256}
NUM_PROCESSES=${NUM_PROCESSES:-8}
NUM_SAMPLES=${NUM_SAMPLES:-50000}
CFG_SCALE=${CFG_SCALE:-1.5}                  # w in l_u + w·(l_c - l_u); 1 = no guidance
CFG_SCHEDULE=${CFG_SCHEDULE:-constant}       # or linear (w ramps from 1 over the token maps)
TEMPERATURE=${TEMPERATURE:-1.0}
TOP_K=${TOP_K:-0}
GLOBAL_SEED=${GLOBAL_SEED:-0}
SAMPLE_BATCH=${SAMPLE_BATCH:-64}             # per process; does not change the images
MIXED_PRECISION=${MIXED_PRECISION:-bf16}     # generator autocast (the backbone uses the tokens' precision)
SAMPLES=${SAMPLES:-$RUN/fid50k-cfg$CFG_SCALE-$CFG_SCHEDULE-t$TEMPERATURE-seed$GLOBAL_SEED}
REF_BATCH=${REF_BATCH:-$WEIGHTS/VIRTUAL_imagenet256_labeled.npz}
INCEPTION_WEIGHTS=${INCEPTION_WEIGHTS:-$WEIGHTS/weights-inception-2015-12-05-6726825d.pth}
METRICS=${METRICS:-fid,isc}                  # kid/prc would use the reference's 10,000 images, not FID-50K statistics
STAGES=${STAGES:-sample eval}
DRY_RUN=${DRY_RUN:-0}
ACCELERATE=${ACCELERATE:-accelerate}
EVAL=${EVAL:-rdpm-eval}
CURL=${CURL:-curl}
REF_URL=${REF_URL:-https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/VIRTUAL_imagenet256_labeled.npz}
INCEPTION_URL=${INCEPTION_URL:-https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth}

RECIPE=sample/imagenet.sh
# die, run (honours DRY_RUN) and launch (accelerate launch -m ...), shared with the other recipe
source "$(dirname "${BASH_SOURCE[0]}")/../train/recipe_lib.sh"

stage_fetch() {
    run "$CURL" --fail --location --create-dirs --output "$REF_BATCH" "$REF_URL"
    run "$CURL" --fail --location --create-dirs --output "$INCEPTION_WEIGHTS" "$INCEPTION_URL"
}

stage_sample() {
    if [[ "$DRY_RUN" != 1 ]]; then
        [[ -f "$RUN/generator.json" ]] || die "no $RUN/generator.json: train with train/imagenet.sh first"
    fi
    # --backbone/--autoencoder are passed explicitly: the recipe trains from cached states, so the
    # generator does not record them
    launch rdpm_gddcm.sample --ckpt "$RUN" --backbone "$BACKBONE" --autoencoder "$AUTOENCODER" \
        --num-samples "$NUM_SAMPLES" --cfg-scale "$CFG_SCALE" --cfg-schedule "$CFG_SCHEDULE" \
        --temperature "$TEMPERATURE" --top-k "$TOP_K" --global-seed "$GLOBAL_SEED" \
        --batch-size "$SAMPLE_BATCH" --mixed-precision "$MIXED_PRECISION" --sample-dir "$SAMPLES"
}

stage_eval() {
    if [[ "$DRY_RUN" != 1 ]]; then
        [[ -f "$SAMPLES/samples.npz" ]] || die "no $SAMPLES/samples.npz: run the sample stage first"
        [[ -f "$REF_BATCH" ]] || die "no reference batch $REF_BATCH: run STAGES=fetch (or set REF_BATCH)"
        [[ -f "$INCEPTION_WEIGHTS" ]] || die "no Inception weights $INCEPTION_WEIGHTS: run STAGES=fetch"
    fi
    run "$EVAL" --samples "$SAMPLES/samples.npz" --reference "$REF_BATCH" \
        --inception-weights "$INCEPTION_WEIGHTS" --metrics "$METRICS" --out "$SAMPLES"
}

for stage in $STAGES; do
    case "$stage" in
        fetch) stage_fetch ;;
        sample) stage_sample ;;
        eval) stage_eval ;;
        *) die "unknown stage '$stage' (use fetch, sample, eval)" ;;
    esac
done
