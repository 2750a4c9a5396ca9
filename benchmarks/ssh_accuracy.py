"""Accuracy of the SSH parser's encrypted-phase model against real OpenSSH sessions.

Generates a seeded set of >= 50 sessions with the real-OpenSSH lab (pcaps/_lib/sshlab.py: our
own sshd in a network namespace, real sftp/scp/ssh/paramiko clients, tcpdump), runs
`SshParser` over each capture through the real decoder and TCP reassembly, and compares with
the ground truth the lab recorded (what the client was told to do; file sizes).

    sudo .venv/bin/python benchmarks/ssh_accuracy.py [--seed 1] [--keep DIR]
    .venv/bin/python benchmarks/ssh_accuracy.py --rescore DIR   # no root: re-run the parser
                                                                # over captures kept earlier

Prints and writes (benchmarks/out/ssh-accuracy.json): transfer and transfer_kind accuracy, auth
accuracy, byte-estimate error for transfers > 1 MB (mean and max %), and every miss.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pcaps._lib.sshlab import SshLab, Truth, replay_ssh  # noqa: E402
from sensor.protocols.ssh import SshSession  # noqa: E402

CIPHERS: list[tuple[str | None, str | None]] = [
    (None, None),  # OpenSSH default: chacha20-poly1305
    ("aes128-gcm@openssh.com", None),
    ("aes256-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha1"),
]
COMMANDS = ["ls /", "pwd", "echo hello", "uname -a", "date", "id", "cat /etc/hostname",
            "ls -la /tmp", "whoami", "echo $SHELL", "df -h /", "uptime"]  # fmt: skip


def plan(seed: int) -> list[dict[str, Any]]:
    """The seeded session list: transfers of log-uniform size 10 KB..20 MB, interactive shells
    of 2..7 commands, failed logins."""
    rng = random.Random(seed)

    def size() -> int:
        return int(math.exp(rng.uniform(math.log(10_000), math.log(20_000_000))))

    items: list[dict[str, Any]] = []
    for tool, op, n in (("sftp", "put", 10), ("sftp", "get", 10), ("scp", "put", 8),
                        ("scp", "get", 8)):  # fmt: skip
        for _ in range(n):
            cipher, mac = CIPHERS[len(items) % len(CIPHERS)]
            items.append({"kind": tool, "op": op, "size": size(), "cipher": cipher, "mac": mac})
    for i in range(10):
        cipher, mac = CIPHERS[i % len(CIPHERS)]
        cmds = rng.sample(COMMANDS, rng.randint(2, 7))
        items.append({"kind": "shell", "commands": cmds, "cipher": cipher, "mac": mac})
    for attempts in (1, 2, 3):
        items.append({"kind": "password", "attempts": attempts})
    for _ in range(3):
        items.append({"kind": "publickey"})
    for i, item in enumerate(items):
        item["name"] = f"{i:02d}-{item['kind']}-{item.get('op', '')}{item.get('size', '')}"
        item["seed"] = seed * 1000 + i
    return items


def run_one(lab: SshLab, item: dict[str, Any], pcap: Path) -> Truth:
    kind = item["kind"]
    if kind in ("sftp", "scp"):
        fn = lab.sftp if kind == "sftp" else lab.scp
        return fn(pcap, item["op"], item["size"], seed=item["seed"], cipher=item["cipher"],
                  mac=item["mac"])  # fmt: skip
    if kind == "shell":
        return lab.interactive(pcap, item["commands"], seed=item["seed"], cipher=item["cipher"],
                               mac=item["mac"])  # fmt: skip
    if kind == "password":
        return lab.failed_password(pcap, attempts=item["attempts"])
    return lab.failed_publickey(pcap)


def generate(seed: int, workdir: Path) -> None:
    items = plan(seed)
    truths = []
    with SshLab("bench", seed=seed) as lab:
        for item in items:
            pcap = workdir / f"{item['name']}.pcap"
            started = time.monotonic()
            truth = run_one(lab, item, pcap)
            print(f"  {item['name']:<28} {time.monotonic() - started:5.1f}s", flush=True)
            truths.append({"item": item, "truth": dataclasses.asdict(truth)})
    (workdir / "truth.json").write_text(json.dumps(truths, indent=1))


def score(workdir: Path) -> dict[str, Any]:
    rows = []
    for entry in json.loads((workdir / "truth.json").read_text()):
        truth = entry["truth"]
        pcap = workdir / Path(truth["pcap"]).name
        sessions = [e for e in replay_ssh(pcap) if isinstance(e, SshSession)]
        row: dict[str, Any] = {"name": entry["item"]["name"], "sessions": len(sessions),
                               "truth_transfer": truth["transfer"],
                               "truth_kind": truth["transfer_kind"],
                               "truth_auth": truth["auth_success"],
                               "truth_bytes": truth["app_bytes"]}  # fmt: skip
        if len(sessions) == 1:
            s = sessions[0]
            est = s.upload_bytes_est if truth["transfer"] == "upload" else s.download_bytes_est
            row.update(transfer=s.transfer, kind=s.transfer_kind, auth=s.auth_success,
                       est_bytes=est, cipher=s.cipher_alg, mac=s.mac_alg,
                       keystrokes=s.keystrokes)  # fmt: skip
            if truth["transfer"] in ("upload", "download") and truth["app_bytes"]:
                row["err_pct"] = 100.0 * (est - truth["app_bytes"]) / truth["app_bytes"]
        rows.append(row)

    def rate(key: str, want: str) -> float:
        return sum(1 for r in rows if r.get(key) == r[want]) / len(rows)

    big = [r for r in rows if r["truth_bytes"] > 1_000_000 and "err_pct" in r]
    errs = [abs(r["err_pct"]) for r in big]
    return {
        "sessions": len(rows),
        "transfer_accuracy": rate("transfer", "truth_transfer"),
        "transfer_kind_accuracy": rate("kind", "truth_kind"),
        "auth_accuracy": rate("auth", "truth_auth"),
        "bytes_over_1mb": len(big),
        "bytes_err_mean_pct": sum(errs) / len(errs) if errs else None,
        "bytes_err_max_pct": max(errs) if errs else None,
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep captures + truth.json in this directory")
    ap.add_argument("--rescore", type=Path, help="score captures kept earlier (no root)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/ssh-accuracy.json")
    args = ap.parse_args()
    if args.rescore:
        workdir = args.rescore
    else:
        workdir = args.keep or Path(tempfile.mkdtemp(prefix="sluice-ssh-bench-"))
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"generating sessions (seed {args.seed}) in {workdir}")
        generate(args.seed, workdir)
    try:
        result = score(workdir)
    finally:
        if not args.rescore and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result["command"] = " ".join(["benchmarks/ssh_accuracy.py", *sys.argv[1:]])
    result["seed"] = args.seed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for r in result["rows"]:
        ok = (r.get("transfer") == r["truth_transfer"] and r.get("kind") == r["truth_kind"]
              and r.get("auth") == r["truth_auth"])  # fmt: skip
        err = f"{r['err_pct']:+6.2f}%" if "err_pct" in r else ""
        print(f"{'  ' if ok else '!!'} {r['name']:<28} {r.get('transfer')!s:<11} "
              f"{r.get('kind')!s:<5} auth={r.get('auth')!s:<5} {err}")  # fmt: skip
    print(f"sessions {result['sessions']}")
    print(f"transfer accuracy       {100 * result['transfer_accuracy']:.1f}%")
    print(f"transfer_kind accuracy  {100 * result['transfer_kind_accuracy']:.1f}%")
    print(f"auth accuracy           {100 * result['auth_accuracy']:.1f}%")
    if result["bytes_err_mean_pct"] is not None:
        print(
            f"byte estimate, {result['bytes_over_1mb']} transfers > 1 MB: mean |error| "
            f"{result['bytes_err_mean_pct']:.2f}%, max {result['bytes_err_max_pct']:.2f}%"
        )


if __name__ == "__main__":
    main()
