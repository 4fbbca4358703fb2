#!/usr/bin/env bash
# Regenerates the committed Swift code for proto/*.proto with protoc and swift-protobuf's
# protoc-gen-swift (built from the swift-protobuf version Package.swift resolves), so that
# the build itself needs no protobuf compiler or build plugin.
#   tools/generate_protobuf.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || {
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -qq protobuf-compiler >/dev/null
}
swift package resolve >/dev/null 2>&1
plugin_src=.build/checkouts/swift-protobuf
[ -d "$plugin_src" ] || { echo "generate_protobuf: swift-protobuf is not among the resolved packages" >&2; exit 1; }
swift build -c release --package-path "$plugin_src" --scratch-path .build/protoc-gen-swift --product protoc-gen-swift >/dev/null
plugin=$(swift build -c release --package-path "$plugin_src" --scratch-path .build/protoc-gen-swift --show-bin-path)/protoc-gen-swift
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
protoc --plugin=protoc-gen-swift="$plugin" --swift_out="$out" --swift_opt=Visibility=Internal \
    --proto_path=proto proto/sentencepiece_model.proto
mv "$out/sentencepiece_model.pb.swift" Sources/QTrainData/Tokenizers/SentencePieceModel.pb.swift
echo "generate_protobuf: wrote Sources/QTrainData/Tokenizers/SentencePieceModel.pb.swift ($(protoc --version))"
