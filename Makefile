# plateop: one build for the library, the two programs, the test bed's node
# agent, the tests and the benchmarks. Every library comes from pkg-config.
#
#   make            build everything (warnings are errors)
#   make test       install Debian dependencies, then run unit and integration tests
#   make asan       build and run the unit tests under ASan + UBSan
#   make bench      run the benchmarks (ONLY=prefix selects some)
#   make demo       see plateop work on a local cluster; make demo-down stops it

PKGS      := libcurl jansson yaml-0.1 libpq openssl libwebsockets zlib
BUILD     ?= build
CC        ?= cc
CFLAGS    ?= -O2 -g
LDFLAGS   ?=
WARN      := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral

PKG_OK    := $(shell pkg-config --exists $(PKGS) cmocka && echo yes)
ifneq ($(PKG_OK),yes)
  ifeq ($(filter deps clean demo-down,$(MAKECMDGOALS)),)
    $(info plateop: some libraries are missing: pkg-config cannot find all of $(PKGS) cmocka)
    $(info plateop: run 'make deps' (or any of 'make test', 'make demo') to install them with apt-get)
  endif
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
TEST_LIBS  := $(shell pkg-config --libs cmocka 2>/dev/null)

ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Ilib -Itests/common $(PKG_CFLAGS) -MMD -MP

LIB_SRC        := $(wildcard lib/*.c)
CONTROLLER_SRC := $(wildcard controller/*.c)
WORKER_SRC     := $(wildcard worker/*.c)
NODEAGENT_SRC  := $(wildcard hack/nodeagent/*.c)
STANDIN_SRC    := $(wildcard tests/standin/*.c)
TESTCOMMON_SRC := $(wildcard tests/common/*.c)
UNIT_SRC       := $(wildcard tests/unit/test_*.c)
INTEG_SRC      := $(wildcard tests/integration/test_*.c)
BENCH_SRC      := $(wildcard tests/bench/bench_*.c)
TOOL_SRC       := $(wildcard tests/tools/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBPLATEOP := $(BUILD)/libplateop.a
TESTCOMMON := $(BUILD)/libtestcommon.a
CONTROLLER := $(BUILD)/plateop-controller
WORKER     := $(BUILD)/plateop-worker
NODEAGENT  := $(if $(NODEAGENT_SRC),$(BUILD)/plateop-nodeagent)
STANDIN    := $(if $(STANDIN_SRC),$(BUILD)/tests/cellprofiler-standin)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
INTEG_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRC))
BENCH_BIN  := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(BENCH_SRC))
TOOL_BIN   := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))

PROGRAMS := $(CONTROLLER) $(WORKER) $(NODEAGENT) $(STANDIN)
TESTS    := $(UNIT_BIN) $(INTEG_BIN) $(BENCH_BIN) $(TOOL_BIN)

.PHONY: all programs tests deps test test-unit test-integration asan bench demo demo-down images clean

all: programs tests

programs: $(PROGRAMS)
tests: $(TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBPLATEOP): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(TESTCOMMON): $(call obj,$(TESTCOMMON_SRC)) $(BUILD)/obj/empty.o
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(CONTROLLER): $(call obj,$(CONTROLLER_SRC)) $(LIBPLATEOP)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(WORKER): $(call obj,$(WORKER_SRC)) $(LIBPLATEOP)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/plateop-nodeagent: $(call obj,$(NODEAGENT_SRC)) $(LIBPLATEOP)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/cellprofiler-standin: $(call obj,$(STANDIN_SRC)) $(LIBPLATEOP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Test programs may link worker or controller modules: every non-main object
# of both programs is put in reach of the tests through these archives.
PROG_OBJ_NOMAIN := $(call obj,$(filter-out %/main.c,$(CONTROLLER_SRC) $(WORKER_SRC) $(NODEAGENT_SRC)))
PROGLIB := $(BUILD)/libprogs.a
$(PROGLIB): $(PROG_OBJ_NOMAIN) $(BUILD)/obj/empty.o
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/obj/empty.o:
	@mkdir -p $(dir $@)
	printf '' | $(CC) -x c -c - -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(PROGLIB) $(TESTCOMMON) $(LIBPLATEOP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS)

deps:
	@hack/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@tests/run.sh --all

test-unit: all
	@tests/run.sh --unit

test-integration: all
	@tests/run.sh --integration

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" all
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 tests/run.sh --unit

bench: deps
	@$(MAKE) --no-print-directory all
	@tests/bench/run.sh $(ONLY)

demo: deps
	@$(MAKE) --no-print-directory all
	@hack/demo.sh up

demo-down:
	@hack/demo.sh down

images:
	@hack/images.sh

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
