# tessera - plain Makefile (GNU make). See README.md.
#
#   make            build build/tessera and build/tessera-runner
#   make test       install missing packages, build, run every test; last line "N passed, N failed"
#   make run        install missing packages, build, start the service on 127.0.0.1:8080
#   make run-cluster  PostgreSQL, two instances and nginx on loopback (scripts/run-cluster.sh)
#   make test-deploy  the container image, the compose stack and the systemd unit, for real
#                     (tests/deploy/run.sh; podman: scripts/install-deps.sh --deploy)
#   make bench      run the benchmarks under bench/
#   make torture KILLS=N   the kill -9 torture run (tests/torture/; N random kills, default 20)
#   make SANITIZE=1 test   the same with AddressSanitizer + UndefinedBehaviorSanitizer (build-san/)
#   make fuzz FUZZ_SECONDS=N   libFuzzer targets (clang, ASan + UBSan, build-fuzz/), each run N s
#   make fuzz-replay       each target over its seed corpus, then fuzzed briefly (CI)

CC      ?= cc
PKGS    := jansson sqlite3 libpq libcrypto libmicrohttpd libcurl openslide libtiff-4 libpng libjpeg zlib
SANITIZE ?= 0

FUZZ    ?= 0
FUZZ_SECONDS ?= 60
FUZZ_REPLAY_SECONDS ?= 25
FUZZ_TARGETS ?=

ifeq ($(FUZZ),1)
# The fuzz build: every object instrumented for libFuzzer's coverage, with
# AddressSanitizer and UndefinedBehaviorSanitizer, by clang (gcc has no
# libFuzzer); the targets link -fsanitize=fuzzer. Its own directory, so the
# gcc builds are untouched.
override CC := clang
BUILD   := build-fuzz
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
OPT     := -O1
else ifeq ($(SANITIZE),1)
BUILD   := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     := -O1
else
BUILD   := build
SANFLAGS :=
OPT     := -O2
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  += -std=c17 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -g $(OPT) \
           -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lwslay -lm -lpthread

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path src/tessera.c ! -path src/tessera_runner.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

KILLS ?= 20

.PHONY: all deps deploy-deps test-deploy test unit integration run run-cluster bench torture clean fuzz fuzz-replay fuzz-build fuzz-bins

all: $(BUILD)/tessera $(BUILD)/tessera-runner

# Installs the Debian packages the project needs, only when something is missing.
deps:
	@scripts/install-deps.sh --if-missing

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The image kernels are loops over pixels: let the compiler vectorise them
# (at -O2, GCC 12 only does so when no remainder loop is needed). GCC's
# flags: clang (the fuzz build) vectorises by itself and refuses the second.
ifneq ($(FUZZ),1)
# -fno-math-errno: sqrtf then compiles to the instruction, which
# vectorises (the values are the same; only errno is no longer set, which
# no image code reads).
$(BUILD)/src/image/%.o: CFLAGS += -ftree-vectorize -fvect-cost-model=dynamic -fno-math-errno
endif

$(BUILD)/libtessera.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# tessera and tessera-runner are linked together by one recipe (a grouped
# target), so that the two always carry one build stamp (see below),
# whichever of them a target names: before, `make unit` relinked
# tessera-runner alone, and the tessera left beside it no longer used it.

# tessera-runner (src/tessera_runner.c): the local executor's fork server
# for job types that read no slides. Linked from the same archive with
# jansson and libm alone: an object that needs an image library cannot
# sneak in (the link fails). The built-in table without the image types
# (builtin.c, JOBS_BUILTIN_SMALL) comes first, so the archive's is not used.
SMALL_OBJ := $(BUILD)/small/src/jobs/builtin.o
$(SMALL_OBJ): src/jobs/builtin.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DJOBS_BUILTIN_SMALL -c $< -o $@

$(BUILD)/tessera $(BUILD)/tessera-runner &: $(BUILD)/src/tessera.o $(BUILD)/src/tessera_runner.o \
		$(SMALL_OBJ) $(BUILD)/libtessera.a
	$(CC) $(LDFLAGS) $(BUILD)/src/tessera.o $(BUILD)/libtessera.a $(LDLIBS) -o $(BUILD)/tessera
	$(CC) $(LDFLAGS) $(BUILD)/src/tessera_runner.o $(SMALL_OBJ) $(BUILD)/libtessera.a \
		-ljansson -lm -lpthread -o $(BUILD)/tessera-runner

# The build stamp (util.h, ts_build_stamp) is recompiled whenever any other
# object changed, so both binaries of one build carry the same stamp and a
# binary left from an earlier build another.
STAMP_OBJ := $(BUILD)/src/util/build_stamp.o
$(STAMP_OBJ): $(filter-out $(STAMP_OBJ),$(LIB_OBJ)) $(BUILD)/src/tessera.o $(BUILD)/src/tessera_runner.o $(SMALL_OBJ)
$(STAMP_OBJ): private CFLAGS += -DTS_BUILD_STAMP='"$(shell date -u +%Y%m%dT%H%M%S.%N)"'

# The unit tests of the local executor start tessera-runner (test_exec_small_runner).
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libtessera.a | $(BUILD)/tessera-runner
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libtessera.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/libtessera.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer $^ $(LDLIBS) -o $@

test: deps
	@$(MAKE) --no-print-directory $(BUILD)/tessera $(BUILD)/tessera-runner $(UNIT_BIN)
	@tests/run-tests.sh $(BUILD)

unit: $(UNIT_BIN)
	@tests/run-tests.sh $(BUILD) unit

integration: $(BUILD)/tessera $(BUILD)/tessera-runner
	@tests/run-tests.sh $(BUILD) integration

# The first run also puts a demo slide into the default data root, so
# examples/demo-analysis.json runs at once.
run: deps
	@$(MAKE) --no-print-directory $(BUILD)/tessera $(BUILD)/tessera-runner
	@test -e var/data/demo.tiff || ./$(BUILD)/tessera demo-slide var/data/demo.tiff
	@echo "tessera: open http://127.0.0.1:8080/ in a browser and sign in with any user name"
	./$(BUILD)/tessera serve --listen 127.0.0.1:8080 --state-dir ./var

# Kills random processes of a loaded service N times and checks that nothing
# acknowledged is lost, nothing runs twice and nothing is left behind.
torture: $(BUILD)/tessera $(BUILD)/tessera-runner
	@TESSERA_BIN=$(BUILD)/tessera node tests/torture/torture.mjs --kills $(KILLS)

# The deployment test: images built from a clean checkout of HEAD, the
# compose stack (PostgreSQL, two instances, nginx) driven through nginx with
# a restart mid-run, the systemd unit verified; TAP, time and image size.
# Its packages (podman, ...) are a list of their own: deps/deploy-packages.txt.
deploy-deps:
	@scripts/install-deps.sh --deploy --if-missing

test-deploy: deploy-deps
	@nice tests/deploy/run.sh

# The distributed setup on one machine: PostgreSQL, two instances, nginx.
run-cluster: deps
	@$(MAKE) --no-print-directory $(BUILD)/tessera $(BUILD)/tessera-runner
	scripts/run-cluster.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/tessera $(BUILD)/tessera-runner $(BENCH_BIN)
	@bench/run-benchmarks.sh $(BUILD)

# Fuzzing (tests/fuzz/README.md): the targets are built by clang in
# build-fuzz/; corpora grow in build-fuzz/corpus/, seeds stay in the repo.
fuzz-build:
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-bins

fuzz-bins: $(FUZZ_BIN)

fuzz: deps
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-bins
	@tests/fuzz/run-fuzz.sh build-fuzz fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-replay: deps
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-bins
	@tests/fuzz/run-fuzz.sh build-fuzz replay $(FUZZ_REPLAY_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
