#!/usr/bin/env bash
# `make demo`: replay the bundled sample traffic and show what Sluice saw.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/demo
rm -rf "$out"
# The captures of real clients and servers (see pcaps/README.md); the crafted edge cases are
# for the regression tests.
captures=()
for c in pcaps/http-*/input.pcap; do
  [[ $c == *http-evasions* ]] || captures+=("$c")
done
echo "== sluice extract over the bundled real HTTP traffic (${captures[*]}) =="
.venv/bin/sluice extract "${captures[@]}" --out "$out"
echo
echo "== HTTP requests seen (from $out/events.jsonl) =="
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for line in (out / "events.jsonl").open():
    e = json.loads(line)
    if e["event_type"] == "http":
        h = e["http"]
        url = h.get("url", "")
        target = f"{h.get('hostname', '')}{url}" if url.startswith("/") else url
        print(f"  {e['src_ip']} -> {e['dest_ip']}:{e['dest_port']}  {h.get('http_method', '?'):7} "
              f"{target}  -> {h.get('status', '-')}  "
              f"up {h['request_body_len']:,} B / down {h['response_body_len']:,} B")
n = sum(1 for _ in (out / "files").iterdir())
print(f"\n{n} distinct objects extracted to {out / 'files'}/ (listed in {out / 'files.jsonl'})")
PY
