"""`concurrency-bot verify FILE|-`: check a Markdown answer's commands and snippets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "Check the commands and snippets of a Markdown answer against the installed Prefect."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a Markdown file, or - for standard input")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--server-version", metavar="VERSION",
                        help="also flag commands and APIs newer than this Prefect server (e.g. 3.4.25)")


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    return Path(source).read_text(encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from bot.knowledge.verifier import verify_markdown

    try:
        markdown = _read(args.file)
    except OSError as exc:
        print(f"verify: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"verify: {args.file} is not UTF-8 text (a binary file?); give it a Markdown answer", file=sys.stderr)
        return 2
    report = verify_markdown(markdown, server_version=args.server_version)
    if args.json:
        print(
            json.dumps(
                {"ok": report.ok, "checked": report.checked, "findings": [f.model_dump() for f in report.findings]},
                indent=2,
            )
        )
    else:
        for finding in report.findings:
            print(f"{finding.severity.upper()} [{finding.kind}] {finding.snippet.strip().splitlines()[0]}")
            print(f"  {finding.message}")
            if finding.fix:
                print("  fix: " + finding.fix.replace("\n", "\n       "))
        print(report.summary())
    return 0 if report.ok else 1
