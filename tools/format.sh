#!/usr/bin/env bash
# Formats the Swift sources with the toolchain's swift-format (.swift-format), or with --check
# fails on any file that is not formatted (the test command runs the check). Generated code
# (*.pb.swift) is left as its generator wrote it.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(find Sources Tests -name '*.swift' ! -name '*.pb.swift' | sort)
if [ "${1:-}" = "--check" ]; then
    # shellcheck disable=SC2086
    swift-format lint --strict $files
else
    # shellcheck disable=SC2086
    swift-format format -i $files
fi
