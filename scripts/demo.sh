#!/bin/sh
# herd's main job on its built-in default corpus, the Go source tree:
#   curate $(go env GOROOT)/src → train a BPE tokenizer → tokenize →
#   pretrain a tiny Llama (main, long-context and annealing stages,
#   Polyak-averaged) → print the held-out loss against the unigram
#   baseline and samples → post-train it on built-in verifiable tasks:
#   SFT, then a reward model and DPO from the SFT model → print their
#   held-out metrics and task accuracy.
# About 4-7 minutes on 2 cores, and about 2 more for post-training.
# Everything lands in $OUT (default runs/demo).
#
#   scripts/demo.sh                    the full demo
#   SMALL=1 scripts/demo.sh            the CI-sized version (one package, a few steps)
#   RESUME_DEMO=1 scripts/demo.sh      continue the runs in $OUT instead of restarting them
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
$GO build ${TAGS:+-tags "$TAGS"} -o "$BIN/" ./cmd/curate ./cmd/tokenizer ./cmd/pretrain ./cmd/posttrain

GOROOT_SRC=$($GO env GOROOT)/src
VOCAB=2048
if [ -n "${SMALL:-}" ]; then
	# CI: the strings, bytes and bufio packages, a smaller vocabulary, 30 steps.
	set -- "train.steps=30" "eval.every=10" "eval.tokens=4096" "checkpoint.every=10" \
		"stages=[{name: anneal, kind: anneal, steps: 6, lr: 1e-3}]" "average.last=2" "$@"
	CURATE_INPUT="input.paths=[$GOROOT_SRC/strings, $GOROOT_SRC/bytes, $GOROOT_SRC/bufio]"
	VOCAB=768
	# Post-training: a few steps of each kind, then one short round of
	# posttrain_tiny (sft → rm → rejection sampling → dpo).
	SFT_ARGS="train.steps=40 eval.every=20"
	RM_ARGS="train.steps=40 eval.every=20"
	DPO_ARGS="train.steps=30 eval.every=15"
	STAGES=1
else
	# About 1.6M training tokens in the main stage: a few minutes on 2 cores.
	set -- "train.steps=800" "eval.every=100" "checkpoint.every=200" "$@"
	CURATE_INPUT="input.paths=[$GOROOT_SRC]"
	# Post-training: three rounds of posttrain_tiny as shipped (the
	# separate sft_tiny, rm_tiny and dpo_tiny runs are left to make
	# demo-small, to keep this under ten minutes).
	SFT_ARGS= RM_ARGS= DPO_ARGS=
	STAGES=
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
	rm -rf "$OUT/pretrain" "$OUT/posttrain/sft" "$OUT/posttrain/rm" "$OUT/posttrain/dpo" "$OUT/posttrain/rounds"
fi
"$BIN/pretrain" -recipe pretrain_tiny $RESUME -out "$OUT/pretrain" \
	"data.sources=[{name: gosrc, paths: [$OUT/tokens]}]" "tokenizer=$OUT/tokenizer" "$@"

# Post-training data: built-in tasks (add, sub, first, last, max, reverse,
# sort) whose answers a program checks. The preference rows are other draws
# (another seed) than the SFT rows; no writer emits the tasks' held-out
# prompts, on which `posttrain eval` scores the models below.
PT=$OUT/posttrain
echo "== post-training data (built-in tasks) → $PT/data"
mkdir -p "$PT/data"
"$BIN/posttrain" data -kind sft -n 4000 -seed 1 -out "$PT/data/sft.jsonl"
"$BIN/posttrain" data -kind pref -n 4000 -seed 2 -out "$PT/data/pref.jsonl"
# The rounds use the task families a tiny model learns within the budget.
ROUND_TASKS=first,last,max,reverse,sort
"$BIN/posttrain" data -kind sft -tasks $ROUND_TASKS -n 8000 -seed 1 -out "$PT/data/rounds_sft.jsonl"
"$BIN/posttrain" data -kind pref -tasks $ROUND_TASKS -n 4000 -seed 2 -out "$PT/data/rounds_pref.jsonl"

if [ -n "$STAGES" ]; then
	echo "== supervised fine-tuning (recipe sft_tiny) → $PT/sft"
	"$BIN/posttrain" -recipe sft_tiny $RESUME -out "$PT/sft" "model=$OUT/pretrain/final" \
		"data.paths=[$PT/data/sft.jsonl]" $SFT_ARGS

	echo "== reward model (recipe rm_tiny) → $PT/rm"
	"$BIN/posttrain" -recipe rm_tiny $RESUME -out "$PT/rm" "model=$PT/sft/final" \
		"data.paths=[$PT/data/pref.jsonl]" $RM_ARGS

	echo "== DPO (recipe dpo_tiny) → $PT/dpo"
	"$BIN/posttrain" -recipe dpo_tiny $RESUME -out "$PT/dpo" "model=$PT/sft/final" \
		"data.paths=[$PT/data/pref.jsonl]" $DPO_ARGS

	# evals RUN_DIR: the held-out metrics of the run's first and last
	# evaluation in its metrics.jsonl, as "name first → last".
	evals() {
		grep '"kind":"eval"' "$1/metrics.jsonl" | awk '
			{ gsub(/[{}"]/, ""); if (NR == 1) first = $0; last = $0 }
			END {
				n = split(first, a, ","); for (i = 1; i <= n; i++) { split(a[i], kv, ":"); f[kv[1]] = kv[2] }
				n = split(last, a, ","); out = ""
				for (i = 1; i <= n; i++) {
					split(a[i], kv, ":"); k = kv[1]
					if (k == "step") out = sprintf("step %s → %s", f[k], kv[2]) out
					else if (k ~ /^eval_/ && k != "eval_tokens" && k != "eval_pairs")
						out = out sprintf("   %s %.4g → %.4g", k, f[k], kv[2])
				}
				print out
			}'
	}
	# The greedy answers of each model to 32 held-out prompts per task (prompts
	# the data writers never emit), checked by the tasks' verifiers, and the
	# reward model's accuracy on held-out (right, wrong) answer pairs.
	"$BIN/posttrain" eval -model "$OUT/pretrain/final" -n 32 > "$PT/eval_pretrain.txt"
	"$BIN/posttrain" eval -model "$PT/sft/final" -rm "$PT/rm/final" -n 32 > "$PT/eval_sft.txt"
	"$BIN/posttrain" eval -model "$PT/dpo/final" -n 32 > "$PT/eval_dpo.txt"

	echo "== post-training summary"
	echo "held-out rows of each run (first → last evaluation):"
	echo "sft  $(evals "$PT/sft")"
	echo "rm   $(evals "$PT/rm")"
	echo "     (a reward model that guesses: eval_accuracy 0.5, eval_loss ln 2 = 0.693)"
	echo "dpo  $(evals "$PT/dpo")"
	echo "     (at its start the policy is the reference: rewards/accuracies 0, margins 0, loss ln 2 + 0.2 × nll)"
	echo "greedy pass@1 on 32 held-out prompts per task (posttrain eval), and the reward model's pair accuracy:"
	awk 'FNR == 1 { f++; next }
		/^mean/ { mean[f] = $3; next }
		{ task[FNR] = $1; v[f, FNR] = $3; if (f == 2) rm[FNR] = $4; if (FNR > n) n = FNR }
		END {
			printf "  %-9s %10s %8s %8s %8s\n", "task", "pretrained", "sft", "dpo", "rm_acc"
			for (i = 2; i <= n; i++) printf "  %-9s %10s %8s %8s %8s\n", task[i], v[1, i], v[2, i], v[3, i], rm[i]
			printf "  %-9s %10s %8s %8s\n", "mean", mean[1], mean[2], mean[3]
		}' "$PT/eval_pretrain.txt" "$PT/eval_sft.txt" "$PT/eval_dpo.txt"
	echo "final models: $PT/sft/final $PT/rm/final $PT/dpo/final (metrics.jsonl, loss.png beside each)"
fi

ROUNDS="model=$OUT/pretrain/final rounds.sft_data=[$PT/data/rounds_sft.jsonl] rounds.pref_data=[$PT/data/rounds_pref.jsonl] rounds.curation=$OUT/docs"
echo "== post-training rounds (recipe posttrain_tiny: sft → rm → rejection sampling → dpo per round) → $PT/rounds"
if [ -n "$STAGES" ]; then
	# CI: one short round.
	"$BIN/posttrain" -recipe posttrain_tiny -out "$PT/rounds" $ROUNDS "rounds.rounds=1" "rounds.eval_n=8" \
		"rounds.sft=[train.steps=20, train.seq_len=128, train.batch=8, optim.lr=3e-3, eval.every=0, data.heldout_fraction=0]" \
		"rounds.rm=[train.steps=10, train.seq_len=128, train.batch=4, optim.lr=1e-3, eval.every=0, data.heldout_fraction=0]" \
		"rounds.rs=[rs.prompts=8, rs.k=8, rs.max_new_tokens=8]" \
		"rounds.dpo=[train.steps=10, train.seq_len=128, train.batch=4, optim.lr=2e-4, eval.every=0, data.heldout_fraction=0]"
else
	"$BIN/posttrain" -recipe posttrain_tiny -out "$PT/rounds" $ROUNDS
fi
