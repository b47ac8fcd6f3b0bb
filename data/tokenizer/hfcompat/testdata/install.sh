#!/usr/bin/env bash
# Installs the Hugging Face tokenizers implementations that data/tokenizer's
# TestHFCompat* tests compare against, pinned in package-lock.json: the
# Rust library through its node bindings (npm "tokenizers") and the
# transformers.js port (@lenml/tokenizers). Needs node and npm; the tests
# skip, saying so, when this was not run.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --prefix .
