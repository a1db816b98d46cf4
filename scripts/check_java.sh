#!/usr/bin/env bash
# Spark needs Java 17+. Say exactly how to get it when it is missing.
set -u
java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if ! command -v "$java_bin" >/dev/null 2>&1; then
  echo "error: Java not found. Spark needs Java 17 or newer." >&2
  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless" >&2
  echo "  macOS:         brew install openjdk@17" >&2
  echo "  or set JAVA_HOME to an installed JDK 17+." >&2
  exit 1
fi
ver=$("$java_bin" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.\([0-9]*\)\)\{0,1\}.*/\1 \3/p' | head -1)
major=${ver%% *}; [ "$major" = "1" ] && major=${ver##* }
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  echo "error: Java $major found; Spark needs Java 17 or newer." >&2
  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless, then set JAVA_HOME" >&2
  exit 1
fi
echo "Java $major: ok"
