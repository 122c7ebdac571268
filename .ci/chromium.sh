#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser tests when it is missing (idempotent).
# Playwright drives it through executable_path; `playwright install` is never used (it
# downloads browser builds, which these machines cannot fetch).
set -euo pipefail
start=$(date +%s)
if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromium ]; then
  echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n1)); 0 s"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "chromium: installed $(/usr/bin/chromium --version 2>/dev/null | head -n1) in $(( $(date +%s) - start )) s"
