# tgrad: one Makefile. `make` builds the libraries and examples, `make test`
# installs what the tests need, then runs the suite plainly and under
# ASan+UBSan (the sanitizer log folder must stay empty), `make demo` trains the
# example CNN. New source files are picked up by wildcard.

CC      ?= cc
SAN     ?= 0
OPT     ?= -O2

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wdouble-promotion -Werror
CFLAGS  := -std=c11 $(WARN) $(OPT) -g -fPIC -D_POSIX_C_SOURCE=200809L -MMD -MP -I.
LDLIBS  := -lm

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

.PHONY: all lib examples test test-plain test-san check deps clean unit
all: lib examples
lib: $(BUILD)/libtgrad.a $(BUILD)/libtgrad.so
examples: $(EX_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtgrad.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtgrad.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(BUILD)/libtgrad.a
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libtgrad.a $(LDLIBS)

$(TEST_BIN): $(TEST_OBJ) $(BUILD)/libtgrad.a
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libtgrad.a -lcriterion $(LDLIBS)

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

# The README's test command: the suite plainly, then sanitized.
test: test-plain test-san
check: test

# Development: one test file against the core plus the named sources, in its
# own folder, e.g. make unit T=tests/test_ops_pool.c SRCS=ops/pool.c BUILD=build-pool
UNIT_SRC = $(wildcard autograd/*.c) ops/kernels/gemm.c $(SRCS) tests/helpers.c $(T)
unit:
	@mkdir -p $(BUILD)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $(BUILD)/unit $(UNIT_SRC) -lcriterion $(LDLIBS)
	$(BUILD)/unit $(TEST_ARGS)

clean:
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(EX_SRC:%.c=$(BUILD)/%.d)
