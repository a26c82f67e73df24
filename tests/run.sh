#!/bin/bash
# The whole test suite, as README.md gives it: builds mitmtun with -Werror twice, plain and
# with ASan+UBSan, and runs every ctest test (unit, fuzz replay, end-to-end) against each.
# The end-to-end tests need root; run as a normal user they are skipped.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build-asan -DMITMTUN_WERROR=ON -DMITMTUN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure
cmake -S . -B build -DMITMTUN_WERROR=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure
