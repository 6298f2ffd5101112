# A thin layer over CMake, so a new user needs two commands: `make demo` and `make test`.
# Both install the Debian packages that are missing first (scripts/setup-deps.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all setup setup-test build build-test build-asan demo test test-asan clean

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
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFADA_WERROR=ON -DFADA_FUZZ=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: setup-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFADA_SANITIZE=ON -DFADA_WERROR=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# The main job on the shipped example.
demo: build
	@$(BUILD)/fadalua scripts/demo.lua

# The whole suite, then the fast suites again under AddressSanitizer + UBSan.
test: build-test build-asan
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan

test-asan:
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -LE "slow|fuzz|nosan"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
