# herd — build, test and demo targets.
# Everything builds with Go's simd/archsimd (GOEXPERIMENT=simd): the
# vectorised passes, attention and the assembly GEMM tiles (AVX-512,
# AVX2). OpenBLAS is linked in as well when its development files are
# installed (libopenblas-dev); the kernels use it for Gemm only on CPUs
# without AVX-512, where the pure-Go tile has no clear lead.
TAGS ?= $(shell pkg-config --exists openblas 2>/dev/null && echo openblas)
export GOEXPERIMENT ?= simd
GO ?= go
GOFLAGS_TAGS = $(if $(TAGS),-tags '$(TAGS)',)

.PHONY: all build test vet bench demo demo-small

all: build

build:
	$(GO) build $(GOFLAGS_TAGS) ./...

vet:
	$(GO) vet $(GOFLAGS_TAGS) ./...

# The test command of the README: unit tests, gradient checks, reference
# logits, fuzz seed corpora, short end-to-end runs.
test:
	$(GO) test $(GOFLAGS_TAGS) -timeout 20m ./...

bench:
	$(GO) test $(GOFLAGS_TAGS) -run '^$$' -bench . -benchmem ./...

# The main job on the built-in default corpus (the Go source tree):
# curate → tokenizer → tokenize → pretrain → eval and samples, then
# post-training on built-in tasks: SFT → reward model and DPO (runs/demo).
demo:
	TAGS='$(TAGS)' GO='$(GO)' sh scripts/demo.sh

# The CI-sized version of the same path.
demo-small:
	TAGS='$(TAGS)' GO='$(GO)' SMALL=1 OUT=runs/demo-small sh scripts/demo.sh
