#!/usr/bin/env bash
# The console's typed API client, generated from the gateway's merged OpenAPI document:
#   scripts/gen_client.sh          -> web/openapi.json and web/src/api/schema.d.ts
#   scripts/gen_client.sh --check  -> fails when the committed files differ from a fresh generation
# The merged document is built in-process (scripts/export_openapi.py), so no service needs to run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/web"
export UV_PYTHON_DOWNLOADS=never
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$ROOT" && SOC_ENV=dev uv run --frozen python scripts/export_openapi.py > "$tmp/openapi.json")
[ -d "$WEB/node_modules" ] || (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
(cd "$WEB" && npx --no-install openapi-typescript "$tmp/openapi.json" -o "$tmp/schema.d.ts" >/dev/null)
if [ "${1:-}" = "--check" ]; then
  cmp -s "$tmp/openapi.json" "$WEB/openapi.json" && cmp -s "$tmp/schema.d.ts" "$WEB/src/api/schema.d.ts" || {
    echo "web/openapi.json or web/src/api/schema.d.ts is out of date: run scripts/gen_client.sh" >&2; exit 1; }
else
  mkdir -p "$WEB/src/api"
  cp "$tmp/openapi.json" "$WEB/openapi.json"
  cp "$tmp/schema.d.ts" "$WEB/src/api/schema.d.ts"
fi
