#!/usr/bin/env bash
# Builds the web console (web/ -> web/dist, served by the gateway at /) when its sources changed
# since the last build: `npm ci` from the committed package-lock.json, then the Vite build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/web"
if ! command -v npm >/dev/null; then
  echo "[web] npm not found: install Node.js 20.19+ (the console is not built; the API still works)" >&2
  exit 1
fi
cd "$WEB"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[web] npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
stamp=dist/index.html
if [ -f "$stamp" ] && [ -z "$(find src index.html public package-lock.json vite.config.ts tsconfig.json -newer "$stamp" -print -quit)" ]; then
  echo "[web] console build is up to date" >&2
  exit 0
fi
echo "[web] building the console" >&2
npm run build --silent
