# Thin wrapper over CMake. The two commands the README promises:
#   make run   install build deps, Release build, start sluiced
#   make test  install test deps, build normal + sanitizer + fuzz builds, run ctest
JOBS ?= $(shell nproc)
RUN_FLAGS ?= --listen 127.0.0.1:8080 --rpc-listen 127.0.0.1:7070 --data-dir ./sluice-data
WERROR := $(if $(CI),ON,ON)

.PHONY: all deps deps-test release debug asan tsan fuzz run test test-release test-asan test-tsan bench clean

all: release

deps:
	@tools/install-deps.sh build

deps-test:
	@tools/install-deps.sh test

release: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build build -j $(JOBS)

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_ASAN=ON -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build build-asan -j $(JOBS)

tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_TSAN=ON -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build build-tsan -j $(JOBS)

# libFuzzer harnesses (clang): tests/fuzz, run longer with bench/fuzz.sh.
fuzz: deps-test
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON \
	  -DSLUICE_BUILD_TESTS=OFF -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz

run: release
	./build/sluiced $(RUN_FLAGS)

# Release build runs every test; the ASan+UBSan build runs unit and
# integration tests; the TSan build runs the runtime's concurrency tests;
# the fuzz build runs a short fixed-seed smoke of every harness.
test: deps-test release asan tsan fuzz
	@cd build && ctest --output-on-failure -j 2 $(CTEST_ARGS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j 2 -L 'unit|integration|tools' $(CTEST_ARGS)
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j 2 -R '^runtime/|^actors/ring_test|^actors/watchdog_test|^storage/journal_test|^integration/test_sessions_fanout|^integration/test_rpc_raw|^integration/test_sub_lifecycle|^integration/test_watchdog_faults|^integration/test_lifecycle_stress|^integration/test_group_commit|^integration/test_fanout_budget|^integration/test_tls_clients$$|^integration/test_auth_expiry|^integration/test_run_stream$$|^integration/test_session_lifecycle' $(CTEST_ARGS)
	@cd build-fuzz && ctest --output-on-failure -j 2 -L fuzz $(CTEST_ARGS)

bench: release
	@tools/install-deps.sh bench
	@echo "see bench/README.md for the scenarios"

clean:
	rm -rf build build-asan build-tsan build-fuzz
