#!/usr/bin/env bash
# Regenerate every sample capture and expected.json under pcaps/. Needs root (network
# namespaces + tcpdump for the REAL cases). Order matters only for truncated-capture, which
# cuts http-post-raw's capture, so that one runs last.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ "$(id -u)" -ne 0 ]; then echo "generate_all.sh: run as root (netns, tcpdump)" >&2; exit 1; fi
for gen in pcaps/*/generate.py; do
    case "$gen" in pcaps/truncated-capture/*) continue ;; esac
    echo "== $gen"
    "$PY" "$gen"
done
echo "== pcaps/truncated-capture/generate.py"
"$PY" pcaps/truncated-capture/generate.py
