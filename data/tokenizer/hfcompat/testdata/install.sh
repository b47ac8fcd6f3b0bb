#!/usr/bin/env bash
# Installs, pinned in package-lock.json, the Hugging Face tokenizers
# implementations that data/tokenizer/hfcompat's tests compare against (the
# Rust library through its node bindings, npm "tokenizers", and the
# transformers.js port, @lenml/tokenizers) and tiktoken (WASM) for
# bench.mjs. Needs node and npm; the tests skip, saying so, when this was
# not run.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --prefix .
