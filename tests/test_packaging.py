"""The package as a user installs it: a real (not editable) install into a fresh environment,
run from another directory, so that data read from `tests/` or the checkout would fail here.

To stay fast it builds without isolation and installs without dependencies; the fresh
environment sees this environment's site-packages for the dependencies only (a .pth line adds
the directory but does not run its .pth files, so the editable install of this checkout stays
out of sight)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_", "SALES_AGENT_", "PYTHON"))
    }
    return env | {"SALES_AGENT_DB": str(tmp_path / "agent.db")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh environment holding a wheel built from this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    # A copy, so the build's own build/ and egg-info never land in the checkout.
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "bench-out", "build", "dist", "*.egg-info", "__pycache__", "*.db*",
            ".*_cache",
        ),
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
            "--no-deps", "--no-build-isolation", "--no-index", str(src),
        ],
        check=True, capture_output=True, timeout=300,
    )
    return venv / "bin"


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "sales-agent"), *args],
        capture_output=True, text=True, cwd=cwd, env=clean_env(cwd), timeout=120,
    )


@pytest.mark.timeout(300)
def test_the_installed_package_is_the_one_that_runs(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c",
         "import app, engine; print(app.__file__, engine.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=clean_env(tmp_path), check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(installed.parent) for p in where), where


@pytest.mark.timeout(300)
def test_eval_reads_the_golden_set_from_the_package(installed: Path, tmp_path: Path) -> None:
    out = run(installed, tmp_path, "eval", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert Path(report["golden"]).is_relative_to(installed.parent)
    golden = (ROOT / "engine" / "data" / "golden.jsonl").read_text("utf-8")
    assert report["n"] == sum(1 for line in golden.splitlines() if line.strip())


@pytest.mark.timeout(300)
def test_prompts_and_guard_run_from_another_directory(installed: Path, tmp_path: Path) -> None:
    prompts = run(installed, tmp_path, "prompts", "--json")
    assert prompts.returncode == 0, prompts.stderr
    assert {row["step"] for row in json.loads(prompts.stdout)} >= {"capture", "detect", "generate"}
    # The default embedder (local MiniLM: its weights are a dependency) over both pair files.
    guard = run(installed, tmp_path, "guard", "--json")
    assert guard.returncode == 0, guard.stderr
    report = json.loads(guard.stdout)
    assert report["paraphrase_pairs"] > 0 and report["hard_negative_pairs"] > 0
    assert report["curve"] and report["false_hits_at_chosen"] == []
    assert Path(report["paraphrases"]).is_relative_to(installed.parent)
