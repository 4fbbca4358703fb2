#!/usr/bin/env bash
# The paper-reproduction sweep (README "Results: the paper's findings"): every run of
# launch/experiments/paper-runs.txt, trained, evaluated on sotu's validation split and on
# Shakespeare (out of domain; `dqt 8` and `bitnet` also with ternary weights at evaluation),
# published to docs/results/paper/ with its metrics, evaluations, command and commit, then the
# report over all finished runs.
#
#   launch/experiments/paper.sh             # everything not yet done
#   launch/experiments/paper.sh '^s-'       # only the runs whose name matches a regex
#
# Resumable: a finished run (runs/paper/NAME/done, or docs/results/paper/NAME/eval.jsonl from an
# earlier machine) is skipped, an interrupted one resumes from
# its newest checkpoint (configs/paper-*.yaml checkpoint every 3 minutes), so the sweep can be
# run in pieces. Set QTRAIN_SKIP_BUILD=1 to use the release binary as it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
pattern=${1:-.}
[ "${QTRAIN_SKIP_BUILD:-0}" = 1 ] || swift build -c release
bin=.build/release/qtrain-dist
runs=runs/paper
published=docs/results/paper
mkdir -p "$runs" "$published"

[ -f data/sotu-bpe4k/tokenizer.json ] || "$bin" prepare --corpus sotu --out data/sotu-bpe4k --tokenizer bpe:4096
[ -f data/shakespeare-bpe4k/tokenizer.json ] \
    || "$bin" prepare --corpus shakespeare --out data/shakespeare-bpe4k --tokenizer data/sotu-bpe4k/tokenizer.json

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# evaluate OUT: one JSON line per (data, weights) into OUT/eval.jsonl.
evaluate() {
    local out=$1 name=$2 lines=""
    local weights=(stored)
    case "$name" in *bitnet*|*dqt8*) weights+=(ternary) ;; esac
    for data in sotu-bpe4k shakespeare-bpe4k; do
        for w in "${weights[@]}"; do
            # Paths relative to the repository, so that the published lines name no machine.
            result=$("$bin" eval "$out" --data "data/$data" --weights "$w" --json | tail -1 | sed "s|$PWD/||g")
            lines+=$(printf '{"data":"%s","weights":"%s","result":%s}' "${data%-bpe4k}" "$w" "$result")$'\n'
        done
    done
    printf '%s' "$lines" > "$out/eval.jsonl.tmp" && mv "$out/eval.jsonl.tmp" "$out/eval.jsonl"
}

# publish OUT NAME: the run's small files, for the repository.
publish() {
    local out=$1 name=$2
    mkdir -p "$published/$name"
    cp "$out/metrics.jsonl" "$out/config.yaml" "$out/eval.jsonl" "$out/command.txt" "$published/$name/"
    # The final checkpoint's state (step, tokens seen, world size) for the report's table.
    cp "$out/$(cat "$out/latest")/state.json" "$published/$name/state.json"
}

# The list comes in on descriptor 3, so that no command of a run can read it from stdin.
while read -r name config args <&3; do
    [[ "$name" =~ $pattern ]] || continue
    out=$runs/$name
    # Done here, or published by an earlier machine (runs/ is not in the repository).
    { [ -f "$out/done" ] || [ -f "$published/$name/eval.jsonl" ]; } && continue
    mkdir -p "$out"
    # shellcheck disable=SC2206
    sets=($args)
    command=("$bin" train --config "$config" "${sets[@]}" --set train.out_dir="$out" --set log.progress=lines)
    case "$name" in *-mpi2) command=(mpirun -n 2 --oversubscribe "${command[@]}" --set train.threads=1) ;; esac
    printf '%s\ncommit %s%s\nstarted %s\n' "${command[*]}" "$(git rev-parse HEAD)" \
        "$(git diff --quiet HEAD -- Sources Package.swift || echo ' (with uncommitted changes)')" "$(date -u +%FT%TZ)" \
        >> "$out/command.txt"
    echo "== $name"
    if [ ! -f "$out/trained" ]; then
        "${command[@]}"
        touch "$out/trained"
    fi
    evaluate "$out" "$name"
    touch "$out/done"
    publish "$out" "$name"
done 3< <(grep -v '^\s*#' launch/experiments/paper-runs.txt | grep -v '^\s*$')

# The report of each size over every published run (seeds grouped into mean and spread).
for size in s m; do
    dirs=("$published/$size"-*/)
    [ -d "${dirs[0]}" ] || continue
    for ext in html png; do
        "$bin" report "${dirs[@]%/}" --group-seeds --out "$published/report-$size.$ext" \
            --title "paper reproduction sweep, size ${size^^} (configs/paper-$size.yaml)"
    done
done
