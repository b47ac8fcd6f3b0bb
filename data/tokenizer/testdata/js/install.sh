#!/usr/bin/env bash
# Installs the JavaScript tokenizer (@lenml/tokenizers, pinned in
# package-lock.json) that data/tokenizer's TestHFCompatJS compares against.
# Needs node and npm; the test skips, saying so, when this was not run.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --prefix .
