#!/usr/bin/env bash
# Installs the system services the tests need, only when they are missing:
# PostgreSQL and MariaDB (Debian packages) and Azurite (npm, pinned in package-lock.json).
# Idempotent and quick when everything is present; run by `make deps` (and so by `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
have_pg() { command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_pg || need_apt+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || need_apt+=(mariadb-server mariadb-client)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-system-deps: need root to apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  echo "install-system-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ -f package-lock.json ] && [ ! -x node_modules/.bin/azurite-blob ]; then
  echo "install-system-deps: npm ci (azurite)"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "install-system-deps: ok"
