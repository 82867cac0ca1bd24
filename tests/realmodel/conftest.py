"""A real model server for the tests marked `real_model`: llama-server with SmolLM2-135M-Instruct
(devtools/llama_server.py). `make test` builds it first; when pytest runs alone, it is built
after collection (outside any test's timeout) if a selected test needs it. A server that
cannot be built or started fails those tests with the reason: never a skip."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from devtools import llama_server

_setup_error: str | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    global _setup_error
    if not any(item.get_closest_marker("real_model") for item in items):
        return
    if llama_server.installed() is not None:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"building llama-server into {llama_server.cache_dir()} (~6 min)")
    progress = io.StringIO()
    try:
        llama_server.ensure(log=progress)
    except (llama_server.SetupError, OSError) as exc:
        _setup_error = str(exc)
    if reporter is not None:
        for line in progress.getvalue().splitlines():
            reporter.write_line(line)


@pytest.fixture(scope="session")
def llama_ready() -> llama_server.Installed:
    """The built binary and the model, or the test fails saying why."""
    if _setup_error is not None:
        pytest.fail(f"llama-server could not be built: {_setup_error}", pytrace=False)
    ready = llama_server.installed()
    if ready is None:
        pytest.fail(
            "llama-server is not built: run `python -m devtools.llama_server ensure`",
            pytrace=False,
        )
    return ready


@pytest.fixture(scope="session")
def llama(llama_ready: llama_server.Installed) -> Iterator[llama_server.RunningServer]:
    """llama-server on a free port of 127.0.0.1, healthy, for the whole session."""
    try:
        with llama_server.serving(llama_ready) as server:
            yield server
    except llama_server.SetupError as exc:
        pytest.fail(f"llama-server could not start: {exc}", pytrace=False)
