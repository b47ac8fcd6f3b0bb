#!/bin/sh
# herd's main job on its built-in default corpus, the Go source tree:
#   curate $(go env GOROOT)/src → train a BPE tokenizer → tokenize →
#   pretrain a tiny Llama (main, long-context and annealing stages,
#   Polyak-averaged) → print the held-out loss against the unigram
#   baseline and samples.
# About 4-7 minutes on 2 cores. Everything lands in $OUT (default runs/demo).
#
#   scripts/demo.sh                    the full demo
#   SMALL=1 scripts/demo.sh            the CI-sized version (one package, a few steps)
#   scripts/demo.sh train.steps=500    extra arguments override pretrain_tiny fields
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo}
GO=${GO:-go}
if [ -z "${TAGS+x}" ]; then
	TAGS=$(pkg-config --exists openblas 2>/dev/null && echo openblas || true)
fi
BIN=$OUT/bin
mkdir -p "$BIN"
echo "== building (tags: ${TAGS:-none})"
$GO build ${TAGS:+-tags "$TAGS"} -o "$BIN/" ./cmd/curate ./cmd/tokenizer ./cmd/pretrain

GOROOT_SRC=$($GO env GOROOT)/src
VOCAB=2048
if [ -n "${SMALL:-}" ]; then
	# CI: the strings, bytes and bufio packages, a smaller vocabulary, 30 steps.
	set -- "train.steps=30" "eval.every=10" "eval.tokens=4096" "checkpoint.every=10" \
		"stages=[{name: anneal, kind: anneal, steps: 6, lr: 1e-3}]" "average.last=2" "$@"
	CURATE_INPUT="input.paths=[$GOROOT_SRC/strings, $GOROOT_SRC/bytes, $GOROOT_SRC/bufio]"
	VOCAB=768
else
	# About 1.6M training tokens in the main stage: a few minutes on 2 cores.
	set -- "train.steps=800" "eval.every=100" "checkpoint.every=200" "$@"
	CURATE_INPUT="input.paths=[$GOROOT_SRC]"
fi

echo "== curate the Go source tree → $OUT/docs"
"$BIN/curate" -recipe curate_gosrc -out "$OUT/docs" "$CURATE_INPUT"

echo "== train a $VOCAB-token BPE tokenizer → $OUT/tokenizer"
"$BIN/tokenizer" train -input "$OUT/docs" -vocab-size $VOCAB -out "$OUT/tokenizer"

echo "== tokenize → $OUT/tokens"
"$BIN/pretrain" tokenize -tokenizer "$OUT/tokenizer" -out "$OUT/tokens" "$OUT/docs"

echo "== pretrain (recipe pretrain_tiny) → $OUT/pretrain"
RESUME=
if [ -n "${RESUME_DEMO:-}" ]; then
	RESUME=-resume
else
	rm -rf "$OUT/pretrain"
fi
"$BIN/pretrain" -recipe pretrain_tiny $RESUME -out "$OUT/pretrain" \
	"data.sources=[{name: gosrc, paths: [$OUT/tokens]}]" "tokenizer=$OUT/tokenizer" "$@"
