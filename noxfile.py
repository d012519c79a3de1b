"""Development sessions: `nox -s tests`, `nox -s lint typing docs`, `nox -s bench`."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typing", "docs", "tests"]
nox.options.reuse_venv = "yes"

PYTHONS = ["3.11", "3.12", "3.13"]
ROOT = Path(__file__).parent

# pyenv keeps several Pythons side by side, but its shims run only the selected one: put
# every installed 3.11+ on PATH so that each test session finds its interpreter.
_PYENV = Path("~/.pyenv/versions").expanduser()
for _bin in sorted(_PYENV.glob("3.1[1-9]*/bin")):
    if str(_bin) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{_bin}{os.pathsep}{os.environ.get('PATH', '')}"
# uv must use these interpreters, never download one.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite with coverage (unit and integration tests)."""
    session.install(".[tests]")
    session.run(
        "pytest",
        "--cov=fido",
        "--cov-report=term-missing:skip-covered",
        *session.posargs,
        env={"COVERAGE_FILE": str(ROOT / f".coverage.{session.python}")},
    )


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install(".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typing(session: nox.Session) -> None:
    """Type-check src, tests, benchmarks and this file with mypy --strict."""
    session.install(".[typing]", "nox")
    session.run("mypy")


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """Build the documentation site; every warning is an error."""
    session.install(".[docs]")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(ROOT / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session(python=PYTHONS[0])
def bench(session: nox.Session) -> None:
    """Run the benchmarks (never part of the tests); pass names to run only some."""
    session.install(".")
    names = session.posargs or sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    for name in names:
        session.run("python", "-m", f"benchmarks.{name}", env={"PYTHONPATH": str(ROOT)})
