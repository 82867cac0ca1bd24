"""`sales-agent` as a user runs it: a subprocess with its own database and no provider keys,
for the CLI tests. A helper module, not a test module: tests never import each other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run(
    tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_"))
    }
    environ |= {"SALES_AGENT_DB": str(tmp_path / "cli.db"), **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        cwd=tmp_path,
    )
