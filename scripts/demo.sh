#!/usr/bin/env bash
# `make demo`: replay the bundled sample traffic under the demo site's configuration and show
# what an operator would see: the summary, the findings, the top talkers, one host's page.
# `scripts/demo.sh --list-captures` prints the captures it replays, one a line, and stops
# (tests/classify/test_privacy_sample_traffic.py reads them).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${SLUICE_DEMO_OUT:-build/demo}
# Captures of real clients and servers (see pcaps/README.md): HTTP uploads, a patient CSV
# mailed to an external mailbox, FTP, TLS, an SFTP upload of an archive, encrypted containers,
# and cervical-screening patient data leaving by mail and to a file-hosting site
# (patient-exfil, which the classification finds). The crafted edge cases (http-evasions,
# http-evader's 423 evasive messages) are for the regression tests.
captures=()
for c in pcaps/http-*/input.pcap pcaps/smtp-attachments/input.pcap pcaps/smtp-starttls/input.pcap \
         pcaps/ftp-passive-upload/input.pcap pcaps/tls-13-alpn/input.pcap \
         pcaps/ssh-sftp-upload/input.pcap pcaps/office-egress/input.pcap \
         pcaps/encrypted-uploads/input.pcap pcaps/patient-exfil/input.pcap; do
  [[ $c == *http-evasions* || $c == *http-evader* || ! -f $c ]] || captures+=("$c")
done
if [[ ${1:-} == --list-captures ]]; then
  printf '%s\n' "${captures[@]}"
  exit 0
fi
rm -rf "$out"
mkdir -p -m 0700 "$out"
# A country database for the demo's documentation addresses (RFC 5737): the export server
# 198.51.100.0/24 "in the US", the file share 203.0.113.0/24 "in the Netherlands". A site
# passes its own MaxMind-format file with --geoip; without one, registry data is bundled.
.venv/bin/python - "$out/demo-geo.mmdb" <<'PY'
import sys
from mmdb_writer import MMDBWriter
from netaddr import IPSet
writer = MMDBWriter(ip_version=6, database_type="Sluice-Demo-Country", ipv4_compatible=True)
writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "US"}})
writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NL"}})
writer.to_db_file(sys.argv[1])
PY
export SLUICE_CONFIG=scripts/demo.toml
echo "== sluice extract (a replay that also keeps the files) of ${#captures[@]} bundled captures, config $SLUICE_CONFIG =="
.venv/bin/sluice extract "${captures[@]}" --out "$out" --geoip "$out/demo-geo.mmdb"
echo
echo "== sluice findings --db $out =="
.venv/bin/sluice findings --db "$out"
echo
echo "== sluice top --db $out --window all =="
.venv/bin/sluice top --db "$out" --window all --limit 5 --geoip "$out/demo-geo.mmdb"
echo
echo "== sluice host 10.10.0.10 --db $out --since all (also as $out/host.html) =="
.venv/bin/sluice host 10.10.0.10 --db "$out" --since all --geoip "$out/demo-geo.mmdb" \
  --html "$out/host.html"
.venv/bin/sluice top --db "$out" --window all --geoip "$out/demo-geo.mmdb" \
  --html "$out/top.html" >/dev/null
echo
echo "Outputs in $out/ (events.jsonl, files.jsonl, files/, sluice.db, top.html, host.html)."
