#!/usr/bin/env bash
# Installs, pinned in package-lock.json, node-llama-cpp 3.21.1 with its
# prebuilt llama.cpp for linux-x64 (CPU), which checkpoint/gguf's tests
# load herd's GGUF files into. --omit=optional leaves out the CUDA and
# Vulkan builds (~650 MB); nothing is compiled or downloaded at install or
# run time. Needs node and npm; the tests skip, saying so, when this was
# not run.
set -euo pipefail
cd "$(dirname "$0")"
NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --no-audit --no-fund --omit=optional --prefix .
