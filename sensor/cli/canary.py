"""`sluice canary new|list`: mint canary tokens and list the registered ones.

The runtime edge of sensor/classify/canary.py. `new` prints the token on stdout exactly once
(the only time it exists in clear; the store keeps its keyed hash) and a note on stderr;
`list` prints kinds, labels and creation times, never a token. Exit status 0 when done, 2 on
a usage error (a bad domain or label, an unsafe key, a damaged store).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from sensor.classify.canary import (
    DEFAULT_DOMAIN,
    DEFAULT_STORE_PATH,
    KINDS,
    CanaryError,
    CanaryStore,
    mint,
    register,
)
from sensor.classify.secret import DEFAULT_SECRET_PATH, SECRET_HELP, SecretError, load_secret

EXIT_OK = 0
EXIT_USAGE = 2
STORE_HELP = "the canary store (JSON, mode 0600)"


def add_parser(subparsers: Any) -> None:
    canary = subparsers.add_parser(
        "canary",
        help="canary tokens: values planted in your data that must never leave",
        description="Canary tokens: mint a value to plant in a dataset, a document or a "
        "DNS zone; any sight of it leaving is a critical `canary` finding. Only a keyed "
        "hash of each token is stored.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    actions = canary.add_subparsers(dest="canary_action", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="mint a token and print it once",
        description="Mint a token of KIND, print it once on stdout and store its keyed "
        "hash with the label. A bsn token passes the elfproef and is no documented example "
        "or RvIG test number, but it may be a real person's number: plant it with other "
        "canary values in one honey record. An iban token is a valid NL IBAN of a real "
        "bank code with a random account number.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    new.add_argument("--kind", required=True, choices=KINDS, help="what the token looks like")
    new.add_argument("--label", required=True, help="what it is and where it is planted")
    new.add_argument(
        "--domain",
        default=DEFAULT_DOMAIN,
        help="the domain of email, url and dns-name tokens (one you control, so that mail "
        "or lookups to it are seen too)",
    )
    new.add_argument("--store", metavar="PATH", default=DEFAULT_STORE_PATH, help=STORE_HELP)
    new.add_argument("--secret", metavar="PATH", default=DEFAULT_SECRET_PATH, help=SECRET_HELP)
    listing = actions.add_parser(
        "list",
        help="list the registered canaries (never their tokens)",
        description="List the registered canaries: creation time, kind and label.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    listing.add_argument("--store", metavar="PATH", default=DEFAULT_STORE_PATH, help=STORE_HELP)
    listing.add_argument("--secret", metavar="PATH", default=DEFAULT_SECRET_PATH, help=SECRET_HELP)


def run(args: argparse.Namespace) -> int:
    try:
        if args.canary_action == "new":
            return _new(args)
        return _list(args)
    except (CanaryError, SecretError) as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"sluice: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def _new(args: argparse.Namespace) -> int:
    token = mint(args.kind, args.domain)  # before anything is written: a bad domain stops here
    Path(args.store).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = load_secret(args.secret)
    canary = register(args.store, key, args.kind, token, args.label, time.time())
    print(token)
    sys.stdout.flush()
    print(
        f"canary {canary.kind} {canary.label!r} registered in {args.store}; the token above is "
        "shown this once and stored only as a keyed hash. A running sensor whose "
        "[classify] canaries names this store arms it at its next start "
        "(systemctl restart sluice)",
        file=sys.stderr,
    )
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    key = load_secret(args.secret, create=False)
    store = CanaryStore.load(args.store, key)
    if not len(store):
        print(f"no canaries in {args.store}")
        return EXIT_OK
    print(f"{'created':<20}  {'kind':<8}  label")
    for canary in store:
        print(f"{canary.created:<20}  {canary.kind:<8}  {canary.label}")
    return EXIT_OK
