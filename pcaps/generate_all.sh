#!/usr/bin/env bash
# Regenerate every sample capture and expected.json under pcaps/. Needs root (network
# namespaces + tcpdump for the REAL cases). Order matters only for the derived cases, which
# cut another case's capture, so they run last: truncated-capture (from http-post-raw) and
# smtp-one-sided (from smtp-attachments).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ "$(id -u)" -ne 0 ]; then echo "generate_all.sh: run as root (netns, tcpdump)" >&2; exit 1; fi
DERIVED="pcaps/truncated-capture/generate.py pcaps/smtp-one-sided/generate.py"
for gen in pcaps/*/generate.py; do
    case " $DERIVED " in *" $gen "*) continue ;; esac
    echo "== $gen"
    "$PY" "$gen"
done
for gen in $DERIVED; do
    echo "== $gen"
    "$PY" "$gen"
done
