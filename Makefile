# A thin layer over CMake, so a new user needs two commands: `make demo` and `make test`.
# Both install the Debian packages that are missing first (scripts/setup-deps.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all setup setup-test build build-test build-asan build-fuzz demo test test-asan test-fuzz teacher student \
        student-ablations clean

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

# The main job on the shipped example: FADA-Fast (make demo DEMO_ARGS='--mode teacher' for the teacher).
DEMO_ARGS ?=
demo: build
	@$(BUILD)/fadalua scripts/demo.lua $(DEMO_ARGS)

# The shipped weights from a clean clone, as they were made (hours on 2 cores;
# rerunning resumes from runs/<name>/checkpoint.safetensors). Data first when
# missing (data/ is not in git; scripts/make_dataset.lua rebuilds it by seed).
# TRAIN_ENV: OpenMP workers sleep between parallel regions. Alone, the default spin is now ~7 %
# faster (OpenBLAS runs inside the OpenMP pool since session 11); but a long run shares the
# machine with whatever else runs, and two spinning processes on 2 cores slow each other
# several-fold, where sleeping ones share (docs/performance.md, session 11).
TRAIN_ENV = OMP_WAIT_POLICY=PASSIVE
teacher: build
	@[ -f data/avatars/hq-train/manifest.jsonl ] || $(BUILD)/fadalua scripts/make_dataset.lua --clips 300 --size 64 --jobs 2
	@$(TRAIN_ENV) $(BUILD)/fadalua scripts/train_teacher.lua --data data/avatars/hq-train --out runs/teacher --steps 4000 --batch 4 --ckpt-every 50
	@# the shipped run went on from its step 4000 with the cosine stretched to 8000 steps, then from
	@# 8000 with it stretched to 10000 (weights/fada-teacher.md)
	@$(TRAIN_ENV) $(BUILD)/fadalua scripts/train_teacher.lua --data data/avatars/hq-train --out runs/teacher --steps 8000 --batch 4 --ckpt-every 50
	@$(TRAIN_ENV) $(BUILD)/fadalua scripts/train_teacher.lua --data data/avatars/hq-train --out runs/teacher --steps 10000 --batch 4 --ckpt-every 50
	@$(BUILD)/fadalua scripts/train_teacher.lua --out runs/teacher --export weights/fada-teacher.safetensors

# (1000 steps: the shipped run was started at 1200 and resumed at step 200 with --steps 1000, the
# cosine shortened while the learning rate was still at its peak, so the run fits one session)
STUDENT_STEPS = 1000
BALANCED_STEPS = 200
BALANCED_OWN_FLAGS = --balanced-share 1 --gt-share 0.6 --substeps 1 --w-ref 2,2 --w-audio 3.5,3.5 --lr 1e-4 --warmup 20 \
                     --ema 0.99 --teacher-dtype bf16 --ckpt-every 25
student: build
	@[ -f data/avatars/hq-train/manifest.jsonl ] || $(BUILD)/fadalua scripts/make_dataset.lua --clips 300 --size 64 --jobs 2
	@[ -f data/avatars/moderate-train/manifest.jsonl ] || $(BUILD)/fadalua scripts/make_dataset.lua --clips 300 --size 64 --jobs 2 --tier moderate
	@$(TRAIN_ENV) $(BUILD)/fadalua scripts/distill_student.lua --teacher weights/fada-teacher.safetensors --out runs/student --steps $(STUDENT_STEPS)
	@$(BUILD)/fadalua scripts/distill_student.lua --out runs/student --export runs/student-stage1.safetensors
	@# stage 2: half the steps train FADA-Balanced's three branches (their own tokens), half token mode;
	@# the backbone frozen, only the branch tokens and the CFG control layers train (weights/fada-student.md)
	@$(TRAIN_ENV) $(BUILD)/fadalua scripts/distill_student.lua --teacher weights/fada-teacher.safetensors \
	  --init runs/student-stage1.safetensors --out runs/student-balanced --balanced-share 0.5 --steps $(BALANCED_STEPS) \
	  --train-only 'cfg_branch_tokens,unet%.cfg_ctrl%..+' --lr 1e-4 --warmup 20 --ema 0.99 --teacher-dtype bf16 \
	  --ckpt-every 25
	@$(BUILD)/fadalua scripts/distill_student.lua --out runs/student-balanced --export weights/fada-student.safetensors
	@# FADA-Balanced's own weights: from the teacher, Balanced steps only, one teacher substep per student
	@# step (the target is the 6 x 3 teacher's own output) and the ground truth at share 0.6; the shipped
	@# run went 200 steps and was resumed with --steps 400 (weights/fada-student.md)
	@for n in 200 400; do $(TRAIN_ENV) $(BUILD)/fadalua scripts/distill_student.lua --teacher weights/fada-teacher.safetensors \
	  --out runs/student-balanced-own $(BALANCED_OWN_FLAGS) --steps $$n || exit 1; done
	@$(BUILD)/fadalua scripts/distill_student.lua --out runs/student-balanced-own --export weights/fada-student-balanced.safetensors

# The ablations of the student's card: the shipped recipe with one part changed, each cut at
# step ABLATION_STEPS of the same STUDENT_STEPS schedule (--stop-at), beside the recipe itself cut there
# (runs/ablation-full: the recipe unchanged, on the same schedule). Exports go to
# runs/ablations/NAME.safetensors for scripts/compare.lua --ablations.
ABLATION_STEPS ?= 150
# the teacher's passes in bf16 where the CPU has AVX512-BF16 (1.23-1.27x faster steps; f32 elsewhere)
ABLATION_FLAGS ?= --teacher-dtype bf16
ABLATIONS = full: no-gt:--gt-share=0 no-moderate:--data-moderate=none fixed-mixer:--mixer=fixed \
            default-scales:--w-ref=2,2:--w-audio=3.5,3.5
student-ablations: build
	@[ -f data/avatars/moderate-train/manifest.jsonl ] || $(BUILD)/fadalua scripts/make_dataset.lua --clips 300 --size 64 --jobs 2 --tier moderate
	@[ -f data/avatars/hq-train/manifest.jsonl ] || $(BUILD)/fadalua scripts/make_dataset.lua --clips 300 --size 64 --jobs 2
	@mkdir -p runs/ablations; for a in $(ABLATIONS); do \
	  name=$${a%%:*}; flags=$$(echo "$${a#*:}" | tr ':' ' '); \
	  $(TRAIN_ENV) $(BUILD)/fadalua scripts/distill_student.lua --teacher weights/fada-teacher.safetensors \
	    --out runs/ablation-$$name --steps $(STUDENT_STEPS) --stop-at $(ABLATION_STEPS) $(ABLATION_FLAGS) $$flags || exit 1; \
	  $(BUILD)/fadalua scripts/distill_student.lua --out runs/ablation-$$name \
	    --export runs/ablations/$$name.safetensors || exit 1; \
	done

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
