#!/usr/bin/env bash
# Installs what is missing, then builds and runs the whole test suite in release mode
# (numerical code is many times slower in debug builds). Extra arguments go to `swift test`,
# e.g. ./launch/test.sh --filter GradientCheckTests
set -euo pipefail
cd "$(dirname "$0")/.."

./launch/setup.sh
swift build -c release -Xswiftc -enable-testing --build-tests
swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing "$@"
