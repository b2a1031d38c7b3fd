# SPDX-License-Identifier: MIT
#
# The two commands of the README, and their friends:
#   make run        install missing packages, build, run the main job
#   make test       install missing packages, build, run the default test tier (< 15 min)
#   make test-long  the long tier: full matrices and soaks (hours)
#   make asan       the default tier built with AddressSanitizer + UBSan (build-asan/)
#   make tsan       the default tier built with ThreadSanitizer (build-tsan/)
#   make bench      the benchmark suite here: JSON, charts and a table in build/bench-results/
#   make install PREFIX=/opt/libdsm
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local

.PHONY: all deps configure build run test test-long bench asan tsan install format clean

all: build

deps:
	@tools/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# The main job: 2 ranks share an array on this machine; the result is checked and each
# rank's counters are printed at the end.
run: build
	DSM_STATS=1 mpiexec -n 2 $(BUILD)/tools/dsm-demo

# Tests run one at a time: multi-rank tests want the machine's cores to themselves.
test: build
	ctest --test-dir $(BUILD) -LE long --output-on-failure

test-long: build
	DSM_TEST_TIER=long ctest --test-dir $(BUILD) --output-on-failure

# The benchmark suite on this machine (BENCHMARKS.md): 2 ranks over shm and tcp, 4 and
# 64 KiB lines, a few minutes; DSM_BENCH_PROVIDERS, DSM_BENCH_LINE_SIZES, DSM_BENCH_ARGS
# change what runs (bench/run.sh).
bench: build
	bench/run.sh $(BUILD) $(BUILD)/bench-results

asan:
	$(MAKE) BUILD=build-asan CMAKE_FLAGS="-DDSM_SANITIZE=address $(CMAKE_FLAGS)" test

tsan:
	$(MAKE) BUILD=build-tsan CMAKE_FLAGS="-DDSM_SANITIZE=thread $(CMAKE_FLAGS)" test

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan
