#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (no `playwright install` here).
# An emoji font too, best effort: without one the screenshots show the pages' icons as boxes.
set -eu
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
install() { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null; }
if ! { command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; }; then
  echo "Installing Debian's chromium for the browser tests..."
  install chromium
fi
if command -v fc-list >/dev/null 2>&1 && ! fc-list | grep -qi emoji; then
  echo "Installing an emoji font for the browser tests' screenshots..."
  install fonts-noto-color-emoji || echo "warning: no emoji font; screenshots will show boxes for icons."
fi
