#!/usr/bin/env bash
# Makes sure headless Chromium is available for the admin console's browser tests
# (server/admin_browser_test.go): installs Debian's chromium package when it is missing.
# Prints the path of the chromium binary. Exits non-zero when none can be had; the tests then
# skip outside CI and fail in CI (CI=true).
set -euo pipefail

find_chromium() {
  for c in "${AUTHZ_TEST_CHROMIUM:-}" chromium chromium-browser google-chrome-stable google-chrome; do
    [ -n "$c" ] || continue
    if p=$(command -v "$c" 2>/dev/null); then echo "$p"; return 0; fi
  done
  return 1
}

if p=$(find_chromium); then echo "$p"; exit 0; fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing chromium from Debian's packages" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core) >&2
else
  echo "ensure-chromium: chromium not found and cannot install it (not root or no apt-get)" >&2
  exit 1
fi

if p=$(find_chromium); then echo "$p"; exit 0; fi
echo "ensure-chromium: chromium is still missing after installation" >&2
exit 1
