#!/bin/sh
# Set up everything the test suite needs, then run the whole suite (as CI does).
# Extra arguments go to pytest, e.g. tools/test.sh -m "not slow".
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh --test
.venv/bin/ruff check src tests bench tools
# benchmarks run once each in a small smoke size (harness correctness, no timing)
export POSTIER_BENCH_SMALL="${POSTIER_BENCH_SMALL:-1}"
# SpamAssassin's rule set is compiled once for the whole run (tests/conftest.py)
POSTIER_TEST_SPAM_CACHE="$(mktemp -d /tmp/postier-spamrules.XXXXXX)"
export POSTIER_TEST_SPAM_CACHE
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider tests bench --benchmark-disable "$@" || status=$?
rm -rf "$POSTIER_TEST_SPAM_CACHE"
exit "$status"
