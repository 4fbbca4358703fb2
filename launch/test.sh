#!/usr/bin/env bash
# Installs what is missing, then builds and runs the whole test suite in release mode
# (numerical code is many times slower in debug builds). Extra arguments go to `swift test`,
# e.g. ./launch/test.sh --filter GradientCheckTests
#
# Python test oracles (safetensors, tokenizers, numpy, sentencepiece, gguf, pyarrow and zstandard for the
# corpus formats, and torch with transformers
# for the Hugging Face export and import checks: about 6 GB, a minute or two from PyPI) go into a
# virtual environment under .build/ so nothing is installed into the system's Python. Set
# QTRAIN_TEST_PYTHON to use another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

./launch/setup.sh
if [ -z "${QTRAIN_TEST_PYTHON:-}" ]; then
    venv=.build/test-python
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import safetensors, tokenizers, numpy, sentencepiece, gguf, tensorboard, torch, transformers, pyarrow, zstandard" 2>/dev/null; then
        if ! python3 -m venv "$venv" 2>/dev/null; then
            sudo=""
            [ "$(id -u)" -ne 0 ] && sudo="sudo"
            $sudo apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$venv"
        fi
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir safetensors tokenizers numpy sentencepiece gguf tensorboard \
            torch transformers pyarrow zstandard
    fi
    export QTRAIN_TEST_PYTHON="$PWD/$venv/bin/python"
fi
# Every Swift file as swift-format (.swift-format) writes it: ./tools/format.sh fixes what this finds.
./tools/format.sh --check
swift build -c release -Xswiftc -enable-testing --build-tests
# The target graph, the README's layer table and every target's imports must agree.
python3 tools/check_layers.py
swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing "$@"
