"""`sluice policy check [FILE]`: validate a policy file and show its rules.

The parser the sensor uses at start-up (sensor/policy/policy.py), so a file that passes here
loads there. Without FILE: the policy the sensor would use (the config's `[policy] file`,
else policy.toml of the signatures directory). Prints one line for the policy and one per
rule with its line number; an error is one line naming the file, the line and the rule, and
exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sensor.policy.policy import PolicyError, describe, load_policy

EXIT_OK = 0
EXIT_INVALID = 2


def add_parser(sub: Any) -> None:
    policy = sub.add_parser(
        "policy",
        help="validate a policy file",
        description="Validate the policy that turns findings into verdicts.",
    )
    actions = policy.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate a policy file and list its rules",
        description="Validate FILE (default: the policy the sensor would use) and list its "
        "rules with their line numbers. Exit status 2 when it is broken.",
    )
    check.add_argument("file", nargs="?", help="the policy file")
    check.add_argument("--signatures", metavar="DIR", help="the signatures directory")
    check.add_argument("--config", metavar="PATH", help="the config file")


def run(args: argparse.Namespace) -> int:
    from sensor.cli.main import UsageError, load_config_or_fail

    path = args.file
    signatures = args.signatures
    origin = "--signatures"
    if path is None:
        try:
            config = load_config_or_fail(args.config).config
        except UsageError as exc:
            print(f"sluice: error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        path = config.policy.file or None
        if signatures is None and config.signatures_dir is not None:
            signatures, origin = config.signatures_dir, "signatures_dir in the config"
    try:
        policy = load_policy(path, signatures, origin)
    except PolicyError as exc:
        print(f"error {exc}")
        return EXIT_INVALID
    for line in describe(policy):
        print(line)
    return EXIT_OK
