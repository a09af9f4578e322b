#!/usr/bin/env bash
# Regenerate src/scrawn/_proto from proto/: protobuf messages, type stubs and connectrpc stubs.
# Usage: bash scripts/gen_proto.sh [OUT_DIR]   (OUT_DIR defaults to src/scrawn/_proto; scripts/test
# generates into a temporary directory and compares, so a check never rewrites the tree.)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-src/scrawn/_proto}" && cd "${1:-src/scrawn/_proto}" && pwd)
find "$out" \( -name '*_pb2.py' -o -name '*_pb2.pyi' -o -name '*_connect.py' \) -delete
protos=$(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
(cd proto && python -m grpc_tools.protoc -I. \
  --python_out="$out" --pyi_out="$out" \
  --plugin=protoc-gen-connectrpc="$(command -v protoc-gen-connectrpc)" \
  --connectrpc_out="$out" --connectrpc_opt=protobuf=google \
  $protos)
for d in $(cd "$out" && find . -type d); do touch "$out/$d/__init__.py"; done
