# tgrad: one Makefile. `make` builds the libraries and examples, `make test`
# installs what the tests need, then runs the suite plainly and under
# ASan+UBSan (the sanitizer log folder must stay empty), `make demo` trains the
# example CNN. New source files are picked up by wildcard.

CC      ?= cc
SAN     ?= 0
OPT     ?= -O2

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wdouble-promotion -Werror
CFLAGS  := -std=c11 $(WARN) $(OPT) -g -fPIC -D_POSIX_C_SOURCE=200809L -MMD -MP -I.
OMP     ?= 1
LDLIBS  := -lm
ifeq ($(OMP),1)
CFLAGS  += -fopenmp
LDFLAGS += -fopenmp
endif

ifeq ($(SAN),1)
BUILD   ?= build-san
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif
BUILD   ?= build

LIB_SRC   := $(wildcard autograd/*.c ops/*.c ops/kernels/*.c nn/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  := $(wildcard tests/*.c)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
EX_SRC    := $(wildcard examples/*.c)
EX_BIN    := $(EX_SRC:%.c=$(BUILD)/%)
TEST_BIN  := $(BUILD)/tests/tgrad_tests

PHONY_EXTRA := demo interop fuzz bench bench-build bench-deps bench-fmnist
.PHONY: $(PHONY_EXTRA) all lib examples test test-plain test-san check deps clean unit run-examples
all: lib examples
lib: $(BUILD)/libtgrad.a $(BUILD)/libtgrad.so
examples: $(EX_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
# The optimizer's Adam loop vectorises only when sqrt need not set errno (its
# argument is never negative; the results are the same).
$(BUILD)/nn/optim.o: CFLAGS += -fno-math-errno

$(BUILD)/libtgrad.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtgrad.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(BUILD)/libtgrad.a
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libtgrad.a $(LDLIBS)

# The test binary routes the heap functions through tests/alloc_hook.c, so
# test_alloc.c can count the allocations of a training step.
WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,--wrap=aligned_alloc,--wrap=posix_memalign
$(TEST_BIN): $(TEST_OBJ) $(BUILD)/libtgrad.a
	$(CC) $(LDFLAGS) $(WRAP_ALLOC) -o $@ $(TEST_OBJ) $(BUILD)/libtgrad.a -lcriterion $(LDLIBS)

# Criterion from Debian when it is missing (apt-get as root).
deps:
	@if [ ! -f /usr/include/criterion/criterion.h ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing libcriterion-dev"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcriterion-dev; \
	  else \
	    echo "Criterion is missing: run 'sudo apt-get install libcriterion-dev'" >&2; exit 1; \
	  fi; \
	fi

TEST_ARGS ?=
SANLOG := $(abspath build-san/sanlogs)

test-plain: deps
	$(MAKE) --no-print-directory SAN=0 $(TEST_BIN) examples
	$(TEST_BIN) $(TEST_ARGS)
	@$(MAKE) --no-print-directory run-examples

# The README's example is examples/first_graph.c; the examples must succeed
# (seed_network exits non-zero if its gradcheck fails or it does not learn).
run-examples: examples
	@sed -n '/^```c$$/,/^```$$/p' README.md | sed '1d;$$d' > $(BUILD)/readme_example.c
	@tail -n +2 examples/first_graph.c | cmp -s - $(BUILD)/readme_example.c || \
	  { echo "README.md's example and examples/first_graph.c differ" >&2; exit 1; }
	$(BUILD)/examples/first_graph
	$(BUILD)/examples/custom_op
	$(BUILD)/examples/seed_network > $(BUILD)/seed_network.out
	@tail -n 2 $(BUILD)/seed_network.out

test-san: deps
	$(MAKE) --no-print-directory SAN=1 build-san/tests/tgrad_tests
	@rm -rf $(SANLOG) && mkdir -p $(SANLOG)
	ASAN_OPTIONS=log_path=$(SANLOG)/asan:detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=log_path=$(SANLOG)/ubsan:print_stacktrace=1:halt_on_error=1 \
	  build-san/tests/tgrad_tests $(TEST_ARGS)
	@if [ -n "$$(ls -A $(SANLOG))" ]; then \
	  echo "sanitizer reports in $(SANLOG):" >&2; cat $(SANLOG)/* >&2; exit 1; \
	fi
	@echo "sanitizer log folder is empty"

# The main job: fetch Fashion-MNIST, build, train the example CNN.
DATA_DIR  ?= build/data/fashion-mnist
DEMO_ARGS ?=
demo:
	$(MAKE) --no-print-directory SAN=0 $(BUILD)/examples/fashion_mnist
	sh examples/fetch_fashion_mnist.sh $(DATA_DIR)
	$(BUILD)/examples/fashion_mnist --data $(DATA_DIR) $(DEMO_ARGS)

# Checkpoints shared with PyTorch both ways (Debian's python3-torch, a
# cross-check tool only, installed here when root and missing).
interop:
	$(MAKE) --no-print-directory SAN=0 $(BUILD)/examples/torch_interop
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch; }
	/usr/bin/python3 examples/torch_interop.py $(BUILD)/examples/torch_interop $(BUILD)/interop

# The README's test command: the suite plainly, then sanitized.
test: test-plain test-san
check: test

# Benchmarks: bench/*.c, each a program timing fixed shapes; OpenBLAS and
# PyTorch are comparisons only (installed here when root and missing), never
# dependencies of the library. bench/run.sh runs everything and the PyTorch
# reference in the same sitting and prints the ratios.
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:%.c=$(BUILD)/%)
bench-deps:
	@if [ ! -f /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] || ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq libopenblas-dev python3-torch; \
	  else echo "bench needs libopenblas-dev and python3-torch" >&2; exit 1; fi; fi
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libtgrad.a
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libtgrad.a $(BENCH_LIBS) $(LDLIBS)
$(BUILD)/bench/%.o: CFLAGS += -I/usr/include/x86_64-linux-gnu/openblas-pthread
BENCH_LIBS := -lopenblas
bench-build: bench-deps
	$(MAKE) --no-print-directory SAN=0 $(BENCH_BIN)
bench: bench-build
	sh bench/run.sh $(BUILD)
# The main job against PyTorch (several minutes): 3 epochs each, time, peak
# RSS, accuracy.
bench-fmnist: bench-deps
	$(MAKE) --no-print-directory SAN=0 $(BUILD)/examples/fashion_mnist
	sh examples/fetch_fashion_mnist.sh $(DATA_DIR)
	sh bench/fmnist_compare.sh $(BUILD)

# Development: one test file against the core plus the named sources, in its
# own folder, e.g. make unit T=tests/test_ops_pool.c SRCS=ops/pool.c BUILD=build-pool
UNIT_SRC = $(wildcard autograd/*.c ops/kernels/gemm*.c ops/kernels/cpu.c ops/kernels/threads.c) $(SRCS) tests/helpers.c $(T)
unit:
	@mkdir -p $(BUILD)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $(BUILD)/unit $(UNIT_SRC) -lcriterion $(LDLIBS)
	$(BUILD)/unit $(TEST_ARGS)

# Fuzzing (clang's libFuzzer with ASan+UBSan): the checkpoint and IDX parsers.
# make fuzz builds the harnesses and runs each for FUZZ_TIME seconds; new
# inputs go to build-fuzz/corpus, the committed seeds stay as they are.
FUZZ_CC    ?= clang
FUZZ_FLAGS := -std=c11 $(WARN) -g -O1 -D_POSIX_C_SOURCE=200809L -I. \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TIME  ?= 60
fuzz: build-fuzz/fuzz_safetensors build-fuzz/fuzz_idx
	rm -rf build-fuzz/corpus && mkdir -p build-fuzz/corpus/safetensors build-fuzz/corpus/idx
	build-fuzz/fuzz_safetensors -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	  -dict=fuzz/safetensors.dict -artifact_prefix=build-fuzz/ build-fuzz/corpus/safetensors fuzz/corpus/safetensors
	build-fuzz/fuzz_idx -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	  -artifact_prefix=build-fuzz/ build-fuzz/corpus/idx fuzz/corpus/idx
build-fuzz/fuzz_safetensors: fuzz/fuzz_safetensors.c nn/safetensors.c nn/crc32.c nn/io.c autograd/error.c autograd/tensor.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ -lm
build-fuzz/fuzz_idx: fuzz/fuzz_idx.c nn/idx.c nn/io.c autograd/error.c autograd/tensor.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ -lm

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(EX_SRC:%.c=$(BUILD)/%.d)
