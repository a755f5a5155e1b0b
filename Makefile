# procpool - a thin wrapper around CMake. The real build is CMakeLists.txt.
#
#   make            configure into build/ (-O2 -g) and build everything
#                   (the tests too when cmocka is installed)
#   make demo       build and run the lecture example
#   make test       install test deps if needed (root), build, run ctest
#   make bench      build and run every benchmark (figures also as CSV and,
#                   with gnuplot, SVG plots in build/bench)
#   make plots      only redraw those plots from the CSVs of the last bench
#   make bench-docs copy build/bench/*.svg to docs/bench/ (then committed)
#   make fault-sweep  the whole fault-injection sweep (tests/fi; about 25
#                   minutes: every call site the library reaches fails in turn)
#   make install    install into $(PREFIX) (default /usr/local; ldconfig as root)
#   make deb        Debian packages (cpack -G DEB) into build-deb/packages/
#   make asan       build into build-asan with ASan+UBSan and run its tests
#   make tsan       build into build-tsan with clang's ThreadSanitizer and run the
#                   concurrency core's tests (TSan cannot follow the tests that
#                   start threads in forked children or count threads), the
#                   MPI backend included
#   make format     reformat every C source with clang-format (.clang-format)
#   make format-check  fail if a C source is not formatted (clang-format 14,
#                   the version the style was fixed with; others: skipped)
#   make clean      remove the build directories
#
# Variables: CC (e.g. make CC=clang), BUILD (build dir), PREFIX, JOBS,
# WERROR (ON: warnings are errors, as in CI; default OFF),
# SANITIZE (for asan; default address,undefined), CMAKE_ARGS (extra -D options for the configure step).

CMAKE      ?= cmake
CTEST      ?= ctest
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
DEB_BUILD  ?= build-deb
TSAN_TESTS ?= test_apply|test_future|test_pool|test_crash|test_map|test_mpi|test_submit|test_queue|test_steal
PREFIX     ?= /usr/local
JOBS       ?= 2
CMAKE_ARGS ?=
WERROR     ?= OFF
SANITIZE   ?= address,undefined

OPT_FLAGS  := -O2 -g
ASAN_FLAGS := -O1 -g

DEPS_PKGS  := libcmocka-dev pkg-config
DEPS_OPT   := libopenmpi-dev openmpi-bin iproute2 parallel libuv1-dev libjansson-dev chromium gnuplot-nox

# configure DIR, then the extra cmake arguments. A change of $(CC) starts the
# directory afresh, since CMake fixes the compiler on first configure.
define configure
	@if [ -f "$(1)/CMakeCache.txt" ] && [ "$$(cat "$(1)/.procpool-cc" 2>/dev/null)" != "$(CC)" ]; then \
		echo "make: CC changed to '$(CC)'; reconfiguring $(1) from scratch"; \
		rm -rf "$(1)"; \
	fi
	CC="$(CC)" $(CMAKE) -S . -B "$(1)" -DPROCPOOL_WERROR=$(WERROR) $(2) $(CMAKE_ARGS)
	@echo "$(CC)" > "$(1)/.procpool-cc"
endef

.PHONY: all build configure demo test test-build check fault-sweep deps bench plots bench-docs install deb asan tsan tsan-run format format-check clean help

all: build

BUILD_ARGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_C_FLAGS_RELWITHDEBINFO=$(OPT_FLAGS)"

configure:
	$(call configure,$(BUILD),$(BUILD_ARGS))

build: configure
	$(CMAKE) --build "$(BUILD)" -j$(JOBS)

demo: build
	$(CMAKE) --build "$(BUILD)" --target demo

# Install the test dependencies when missing (Debian/Ubuntu): cmocka,
# pkg-config, Open MPI (the MPI backend and its tests), iproute2 (the
# multi-host MPI test makes network namespaces), GNU parallel (the
# command's tests compare with it side by side), libuv (examples/eventloop.c,
# built and run only when it is found), jansson (procpool-trace, the trace
# renderer, and test_trace, built only when it is found), Chromium (its test looks at the
# SVG in headless Chromium; without it that part is skipped) and gnuplot-nox
# (make bench draws its figures as SVG with it; without it the plots are skipped).
# As root: apt-get install, running apt-get update first when the package
# lists are empty or the first install attempt fails. Not root: say how.
deps:
	@if ! command -v dpkg >/dev/null 2>&1; then \
		echo "deps: no dpkg here; make sure cmocka and pkg-config are installed"; exit 0; \
	fi; \
	missing=""; optional=""; \
	for p in $(DEPS_PKGS) $(DEPS_OPT); do \
		if ! dpkg -s "$$p" 2>/dev/null | grep -q '^Status: install ok installed'; then \
			if [ "$$p" = pkg-config ] && command -v pkg-config >/dev/null 2>&1; then continue; fi; \
			case " $(DEPS_OPT) " in *" $$p "*) optional="$$optional $$p";; *) missing="$$missing $$p";; esac; \
		fi; \
	done; \
	if ! command -v $(CMAKE) >/dev/null 2>&1; then missing="$$missing cmake"; fi; \
	if [ -z "$$missing$$optional" ]; then exit 0; fi; \
	echo "deps: missing:$$missing$$optional"; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "deps: not root; install them with:"; \
		echo "    sudo apt-get install -y $(DEPS_PKGS) $(DEPS_OPT)"; \
		if [ -z "$$missing" ]; then echo "deps: (optional: without Open MPI the MPI backend and its tests are left out, without libuv examples/eventloop.c)"; exit 0; fi; \
		exit 1; \
	fi; \
	missing="$$missing$$optional"; \
	export DEBIAN_FRONTEND=noninteractive; \
	lists=$$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$$' -e '^partial$$' -e '^auxfiles$$' | wc -l); \
	if [ "$$lists" -lt 2 ]; then apt-get update; fi; \
	apt-get install -y --no-install-recommends $$missing </dev/null || \
		{ apt-get update && apt-get install -y --no-install-recommends $$missing </dev/null; }

# deps must finish before the build configures (and looks for cmocka), even
# under make -j, hence the sub-make.
# and the tests are required (PROCPOOL_TESTS=ON), not skipped.
test: deps
	$(MAKE) --no-print-directory test-build
	$(CTEST) --test-dir "$(BUILD)" --output-on-failure

test-build:
	$(call configure,$(BUILD),$(BUILD_ARGS) -DPROCPOOL_TESTS=ON)
	$(CMAKE) --build "$(BUILD)" -j$(JOBS)

check: test

# FI_ARGS: fi_driver options (e.g. --quick --budget 600), then cases
# (SCENARIO:START, START fork|spawn|forkserver|mpi); none: every local case.
FI_ARGS ?= --report $(BUILD)/fault_sweep_sites.txt
fault-sweep: deps
	$(MAKE) --no-print-directory test-build
	PROCPOOL_MPI_LIBRARY=$$(ls "$(abspath $(BUILD))"/libprocpool_mpi_fi.so 2>/dev/null) \
	"$(BUILD)/fi_driver" $(FI_ARGS) "$(BUILD)/fi_prog" $(FI_CASES)

bench: build
	$(CMAKE) --build "$(BUILD)" --target bench

# bench/plots.gp alone, on the CSVs that the last make bench left in
# $(BUILD)/bench (a message instead when gnuplot is missing)
plots: configure
	$(CMAKE) --build "$(BUILD)" --target bench_plots

# The plots of the last make bench into docs/bench/, where README.md shows
# them from; they are then committed (make bench && make bench-docs).
bench-docs:
	@ls "$(BUILD)"/bench/*.svg >/dev/null 2>&1 || \
		{ echo "bench-docs: no SVG in $(BUILD)/bench: run make bench (with gnuplot) first"; exit 1; }
	mkdir -p docs/bench
	cp "$(BUILD)"/bench/*.svg docs/bench/

install: build
	$(CMAKE) --install "$(BUILD)" --prefix "$(PREFIX)"

# Packages are built apart, in $(DEB_BUILD), configured for /usr (Debian's
# multiarch library directory), the library and the command only.
deb:
	$(call configure,$(DEB_BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr -DPROCPOOL_TESTS=OFF -DPROCPOOL_EXAMPLES=OFF -DPROCPOOL_BENCH=OFF)
	$(CMAKE) --build "$(DEB_BUILD)" -j$(JOBS)
	cd "$(DEB_BUILD)" && cpack -G DEB

asan: deps
	$(call configure,$(ASAN_BUILD),-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=$(ASAN_FLAGS)" -DPROCPOOL_SANITIZE=$(SANITIZE) -DPROCPOOL_TESTS=ON)
	$(CMAKE) --build "$(ASAN_BUILD)" -j$(JOBS)
	ASAN_OPTIONS=$${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:strict_string_checks=1} \
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	$(CTEST) --test-dir "$(ASAN_BUILD)" --output-on-failure

tsan: deps
	$(MAKE) --no-print-directory tsan-run CC=clang

tsan-run:
	$(call configure,$(TSAN_BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROCPOOL_SANITIZE=thread -DPROCPOOL_TESTS=ON)
	$(CMAKE) --build "$(TSAN_BUILD)" -j$(JOBS)
	TSAN_OPTIONS=$${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
	$(CTEST) --test-dir "$(TSAN_BUILD)" --output-on-failure -R '^($(TSAN_TESTS))$$'

# Formatting: .clang-format, fixed with clang-format 14 (other versions
# format some constructs differently, so the check only runs with 14).
CLANG_FORMAT ?= clang-format
C_SOURCES = git ls-files '*.c' '*.h'

format:
	$(C_SOURCES) | xargs $(CLANG_FORMAT) -i

format-check:
	@v=$$($(CLANG_FORMAT) --version 2>/dev/null | sed -n 's/.*version \([0-9]*\).*/\1/p'); \
	if [ -z "$$v" ]; then echo "format-check: $(CLANG_FORMAT) not found; skipped"; exit 0; fi; \
	if [ "$$v" != 14 ]; then echo "format-check: clang-format $$v here, the style is checked with 14; skipped"; exit 0; fi; \
	$(C_SOURCES) | xargs $(CLANG_FORMAT) --dry-run --Werror && echo "format-check: every C source is formatted"

clean:
	rm -rf "$(BUILD)" "$(ASAN_BUILD)" "$(TSAN_BUILD)" "$(DEB_BUILD)" build-clang

help:
	@sed -n '1,27p' Makefile
