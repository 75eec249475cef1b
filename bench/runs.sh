#!/usr/bin/env bash
# Runs under load (bench/RESULTS.md "Runs"): RUNS_TOTAL runs, RUNS_PARALLEL
# at a time, spread over at least RUNS_MIN_SECONDS, mixing plain runs, output
# floods (output_limit), cancels, client disconnects (orphan timeout 0.5 s)
# and non-zero exits, while /health is probed every 100 ms. It is the ctest
# case tests/integration/test_run_load.py with bigger numbers; it fails
# unless every run ended for the expected reason and, afterwards, no process
# of any run is alive, sluiced has no zombie child, its fds are back at the
# baseline and its RSS within 64 MiB of it. It prints the /health latency
# (p50/p99/max), POST-to-run.start latency, the server's spawn and
# spawn-to-first-output averages, and sluiced's CPU per run.
#
# usage: bench/runs.sh   (env: BUILD=build RUNS_TOTAL=1000 RUNS_PARALLEL=50
#                         RUNS_MIN_SECONDS=300)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${BUILD:-$root/build}
export SLUICED=${SLUICED:-$BUILD/sluiced} SLUICE_BUILD_DIR=$BUILD
export RUNS_TOTAL=${RUNS_TOTAL:-1000} RUNS_PARALLEL=${RUNS_PARALLEL:-50}
export RUNS_MIN_SECONDS=${RUNS_MIN_SECONDS:-300}
exec timeout $((RUNS_MIN_SECONDS + 900)) /usr/bin/python3 "$root/tests/integration/test_run_load.py"
