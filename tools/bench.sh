#!/bin/sh
# The `make bench` of this project: run the pytest-benchmark microbenchmarks in bench/
# (maps, DATA framing, queue-file write, restrictions, content checks, ... and the
# smtpd/e2e comparisons with real Postfix) and print their tables.
#
#   tools/bench.sh                     every benchmark in bench/, full size
#   tools/bench.sh -k queue_file       pytest arguments pass through
#   POSTIER_BENCH_SMALL=1 tools/bench.sh --benchmark-disable
#                                      the CI smoke mode (tools/test.sh runs it)
#
# Scenario runs (capacity planning, with real Postfix side by side) are a separate
# command: `.venv/bin/postier bench lab-2005 --cores 1 --memory 256M --compare postfix`.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "bench: run tools/setup.sh --test first" >&2; exit 1; }
exec .venv/bin/python -m pytest -p no:cacheprovider -q -s bench \
    --benchmark-columns=min,median,mean,rounds --benchmark-sort=name "$@"
