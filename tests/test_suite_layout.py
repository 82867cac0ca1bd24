"""The test suite's own rule: shared fixtures live in conftest.py and shared helpers in the
`*_kit.py` modules, so no test module imports another (or loads one as a plugin)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
IMPORTS_A_TEST = re.compile(r"^\s*(from\s+(tests)?\.?test_\w+\s+import|import\s+tests\.test_)")
PLUGIN_A_TEST = re.compile(r"^\s*pytest_plugins\s*=.*test_\w+")


def test_no_test_module_imports_another() -> None:
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(TESTS.glob("**/*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if IMPORTS_A_TEST.match(line) or PLUGIN_A_TEST.match(line)
    ]
    assert offenders == []


def test_the_rule_catches_what_it_is_for() -> None:
    for line in (
        "from tests.test_cli import run",
        "from .test_providers import Kit",
        "import tests.test_slack_bot",
    ):
        assert IMPORTS_A_TEST.match(line), line
    assert PLUGIN_A_TEST.match('pytest_plugins = ["tests.test_providers"]')
    assert not IMPORTS_A_TEST.match("from tests.llm_kit import Kit")
    assert not IMPORTS_A_TEST.match("from devtools.fake_slack import FakeSlack")
