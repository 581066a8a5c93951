"""scripts/setup-environments: the command line (plan --offline, plan, check, apply) and its exit codes: 0
done, 1 check failed, 2 an error (one line), 3 apply left steps for a person, 130 interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from repo_tools.project import ROOT
from repo_tools.setup import __doc__ as DESCRIPTION  # noqa: N812
from repo_tools.setup.clients import (
    LIVE_DEPENDENCIES,
    OFFLINE_DEPENDENCIES,
    Databricks,
    GitHub,
    SetupError,
    github_token,
    require_extra,
)
from repo_tools.setup.desired import load_desired
from repo_tools.setup.items import Context
from repo_tools.setup.plan import plan_offline, run


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--account-id",
        default=os.environ.get("DATABRICKS_ACCOUNT_ID"),
        help="Databricks account id (default: $DATABRICKS_ACCOUNT_ID)",
    )
    common.add_argument("--account-host", help="accounts console URL (default: the workspaces' cloud's)")
    common.add_argument(
        "--account-profile", help="~/.databrickscfg profile for the account (instead of the above)"
    )
    common.add_argument(
        "--timeout", type=int, default=15, help="seconds before an unreachable host is an error"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output (plan --offline)")
    top = argparse.ArgumentParser(prog="scripts/setup-environments", description=DESCRIPTION.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", parents=[common], help="the desired state, compared with the live one")
    plan.add_argument(
        "--offline", action="store_true", help="no credentials, no network: the desired state only"
    )
    commands.add_parser("check", parents=[common], help="read-only preflight; exit 1 naming what is missing")
    apply = commands.add_parser("apply", parents=[common], help="create what is missing, fix what differs")
    apply.add_argument("--yes", action="store_true", help="never ask: refuse the steps that need a decision")
    apply.add_argument("--create-repo", action="store_true", help="create the GitHub repository (private)")
    apply.add_argument("--create-release-branch", action="store_true", help="create the release branch")
    apply.add_argument(
        "--reviewer", action="append", default=[], help="approver of Environments with reviewers"
    )
    return top


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    args = parser().parse_args(argv)
    # The SDK's debug log holds response bodies, an OAuth secret among them: never below INFO. Its warnings
    # (e.g. host metadata it could not read) would add lines to each error: not shown.
    sdk_log = logging.getLogger("databricks.sdk")
    sdk_log.setLevel(max(sdk_log.getEffectiveLevel(), logging.INFO))
    sdk_log.addHandler(logging.NullHandler())
    try:
        command = f"scripts/setup-environments {args.command}"
        require_extra(OFFLINE_DEPENDENCIES, command, root)
        desired = load_desired(root)
        for env in desired.environments:
            if env.reviewers is not None:
                env.reviewers = list(dict.fromkeys(env.reviewers + getattr(args, "reviewer", [])))
        if args.command == "plan" and args.offline:
            return plan_offline(desired, args.json)
        require_extra(LIVE_DEPENDENCIES, command, root)
        account_host = args.account_host or desired.account_host
        api_url = os.environ.get("GITHUB_API_URL", "https://api.github.com")
        ctx = Context(
            desired=desired,
            databricks=Databricks(account_host, args.account_id, args.account_profile, args.timeout),
            github=GitHub(api_url, github_token(), args.timeout),
            interactive=not getattr(args, "yes", False) and sys.stdin.isatty(),
            create_repo=getattr(args, "create_repo", False),
            create_release_branch=getattr(args, "create_release_branch", False),
        )
        return run(ctx, args.command)
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
