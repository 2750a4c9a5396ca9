#!/usr/bin/env bash
# `make demo`: replay the bundled sample traffic and show what Sluice saw.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/demo
rm -rf "$out"
# Captures of real clients and servers (see pcaps/README.md): HTTP uploads, a patient CSV
# mailed to an external mailbox, FTP, TLS, and an SFTP upload of an archive. The crafted edge
# cases are for the regression tests.
captures=()
for c in pcaps/http-*/input.pcap pcaps/smtp-attachments/input.pcap pcaps/smtp-starttls/input.pcap \
         pcaps/ftp-passive-upload/input.pcap pcaps/tls-13-alpn/input.pcap \
         pcaps/ssh-sftp-upload/input.pcap pcaps/office-egress/input.pcap; do
  [[ $c == *http-evasions* || ! -f $c ]] || captures+=("$c")
done
echo "== sluice extract over ${#captures[@]} bundled captures of real traffic =="
printf '   %s\n' "${captures[@]}"
.venv/bin/sluice extract "${captures[@]}" --out "$out"
echo
echo "== requests, sessions and transfers seen (from $out/events.jsonl) =="
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
    elif e["event_type"] == "ssh":
        s = e["ssh"]
        print(f"  {e['src_ip']} -> {e['dest_ip']}:{e['dest_port']}  SSH {s['client']['software']}"
              f" -> {s['server']['software']}: {s['transfer']} ({s.get('transfer_kind')}), "
              f"about {s['upload_bytes_est']:,} B up / {s['download_bytes_est']:,} B down")
    elif e["event_type"] == "tls":
        t = e["tls"]
        print(f"  {e['src_ip']} -> {e['dest_ip']}:{e['dest_port']}  TLS {t['version']} "
              f"sni={t['sni']} ja4={t['ja4']}")
    elif e["event_type"] == "ftp" and e["ftp"]["type"] == "transfer":
        f = e["ftp"]
        print(f"  {e['src_ip']} -> {e['dest_ip']}:{e['dest_port']}  FTP {f['command']} "
              f"{f['filename']} ({f['mode']}) ok={f['ok']}")
n = sum(1 for _ in (out / "files").iterdir())
print(f"\n{n} distinct objects extracted to {out / 'files'}/ (listed in {out / 'files.jsonl'})")
PY
echo
echo "== top talkers of the demo traffic (sluice top --db $out --window all) =="
.venv/bin/sluice top --db "$out" --window all --limit 5
