# A thin layer over CMake, so a new user needs two commands: `make demo` and `make test`.
# Both install the Debian packages that are missing first (scripts/setup-deps.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all setup setup-test build build-test build-asan build-fuzz demo test test-asan test-fuzz clean

all: build

setup:
	@scripts/setup-deps.sh runtime

setup-test:
	@scripts/setup-deps.sh test

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Tests build with warnings as errors, as CI does.
build-test: setup-test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFADA_WERROR=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: setup-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFADA_SANITIZE=ON -DFADA_WERROR=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# libFuzzer harnesses need clang; only they are built in this tree.
build-fuzz: setup-test
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFADA_FUZZ=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_safetensors fuzz_png fuzz_audio

# The main job on the shipped example.
demo: build
	@$(BUILD)/fadalua scripts/demo.lua

# The whole suite, then the fast suites again under AddressSanitizer + UBSan,
# then each fuzzer for a bounded time (FADA_FUZZ_SECONDS, 30 s by default).
test: build-test build-asan build-fuzz
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-fuzz

test-asan:
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -LE "slow|fuzz|nosan"

test-fuzz:
	@cd $(FUZZ_BUILD) && ctest --output-on-failure -L fuzz

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
