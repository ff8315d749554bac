# Shell helpers shared by the recipes (train/imagenet.sh, sample/imagenet.sh); sourced, not run.
# The sourcing recipe sets RECIPE (its name for messages), NUM_PROCESSES, MIXED_PRECISION, DRY_RUN
# and ACCELERATE first.

die() { echo "$RECIPE: $*" >&2; exit 1; }

[[ "$NUM_PROCESSES" =~ ^[1-9][0-9]*$ ]] || die "NUM_PROCESSES=$NUM_PROCESSES is not a positive integer"

# Print the command (DRY_RUN=1, shell-quoted so it can be pasted) or run it.
run() {
    if [[ "$DRY_RUN" == 1 ]]; then printf '%q ' "$@"; printf '\n'; else "$@"; fi
}

# accelerate launch with NUM_PROCESSES processes on this machine, then `-m MODULE ARGS...`
launch() {
    local args=(--num_processes "$NUM_PROCESSES" --num_machines 1 --mixed_precision "$MIXED_PRECISION"
                --dynamo_backend no)
    if (( NUM_PROCESSES > 1 )); then args=(--multi_gpu "${args[@]}"); fi
    run "$ACCELERATE" launch "${args[@]}" -m "$@"
}
