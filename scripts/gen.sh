#!/usr/bin/env bash
# Regenerates TypeScript from proto/ into proto/gen/ (buf + ts-proto), then type-checks the result with Deno.
# Usage: deno task gen   (or: bash scripts/gen.sh)
set -euo pipefail

BUF_VERSION=1.74.0 # 1.75.0 fails to install on this machine
TS_PROTO_VERSION=2.18.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
plugins="${XDG_CACHE_HOME:-$HOME/.cache}/trellis/protoc-plugins/ts-proto@${TS_PROTO_VERSION}"

fail() {
  echo "gen: error: $*" >&2
  exit 1
}

command -v npx >/dev/null || fail "npx not found; install Node.js (npm) first"

if [[ ! -x "$plugins/node_modules/.bin/protoc-gen-ts_proto" ]]; then
  echo "gen: installing ts-proto@${TS_PROTO_VERSION} into $plugins"
  npm install --silent --no-audit --no-fund --prefix "$plugins" "ts-proto@${TS_PROTO_VERSION}" ||
    fail "could not install ts-proto@${TS_PROTO_VERSION}"
fi
export PATH="$plugins/node_modules/.bin:$PATH"

cd "$root/proto"
echo "gen: buf ${BUF_VERSION} lint"
npx -y "@bufbuild/buf@${BUF_VERSION}" lint || fail "buf lint failed"
echo "gen: buf ${BUF_VERSION} generate -> proto/gen/ (ts-proto ${TS_PROTO_VERSION})"
npx -y "@bufbuild/buf@${BUF_VERSION}" generate || fail "buf generate failed"

cd "$root"
mapfile -t files < <(find proto/gen -name '*.ts' | sort)
((${#files[@]} > 0)) || fail "buf generated no TypeScript files"
printf 'gen: wrote %s\n' "${files[@]}"

deno="$(command -v deno || true)"
if [[ -n "$deno" ]]; then
  "$deno" check "${files[@]}" || fail "generated code does not type-check"
else
  npx -y deno@2.9.6 check "${files[@]}" || fail "generated code does not type-check"
fi
echo "gen: ok (${#files[@]} files type-check)"
