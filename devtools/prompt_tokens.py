"""Prompt token counts per step and style (the same table as `sales-agent prompts`).

    .venv/bin/python -m devtools.prompt_tokens [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from engine.llm.prompts import format_token_report, token_report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.prompt_tokens", description=__doc__)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = token_report()
    print(json.dumps([asdict(r) for r in rows]) if args.json else format_token_report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
