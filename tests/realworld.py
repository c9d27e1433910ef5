"""Real published instrumentation libraries, each version in its own environment.

Shared by the ``realworld`` tests and ``fixtures/realworld/regenerate.py`` (which records the
expositions kept under ``fixtures/realworld/``). Every environment is built from the package
registries with their own clients (pip, npm) or from Debian's Go packages, and cached under
``~/.cache/compatcheck-tests`` (``COMPATCHECK_TEST_CACHE``), keyed by what is installed in it.

A :class:`Pair` is two releases of one small service (``fixtures/realworld/apps/``) that differ
only in the library version; its ``expected.yaml`` holds the exact findings of rolling back from
the newer to the older, written down from the libraries' changelogs and sources.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.services import PROMETHEUS_ACCEPT, TEXT_ACCEPT, fetch, serving

REPO = Path(__file__).resolve().parent.parent
REALWORLD = REPO / "fixtures" / "realworld"
APPS = REALWORLD / "apps"
CACHE = Path(os.environ.get("COMPATCHECK_TEST_CACHE", Path.home() / ".cache" / "compatcheck-tests"))
GOCODE = Path("/usr/share/gocode")
CLIENT_GOLANG = GOCODE / "src" / "github.com" / "prometheus" / "client_golang"


class Missing(Exception):
    """A tool the environment needs is not installed (the test skips, or fails in CI)."""


@dataclass(frozen=True)
class Release:
    """One release of a pair's service: its environment and how to start it."""

    version: str
    #: ``pip`` requirements, or ``npm`` packages (``name@version``), or Go source folder.
    packages: tuple[str, ...]
    kind: str = "python"  # python | node | go


@dataclass(frozen=True)
class Pair:
    name: str
    app: str  # a file under fixtures/realworld/apps/ (python, node) or a Go source folder
    old: Release
    new: Release

    @property
    def folder(self) -> Path:
        return REALWORLD / self.name


PAIRS = (
    Pair(
        "prometheus-client",
        "client_python.py",
        Release("0.3.1", ("prometheus-client==0.3.1",)),
        Release("0.20.0", ("prometheus-client==0.20.0",)),
    ),
    Pair(
        "prometheus-flask-exporter",
        "flask_exporter.py",
        Release(
            "0.15.4",
            (
                "prometheus-flask-exporter==0.15.4",
                "prometheus-client==0.20.0",
                "flask==2.0.3",
                "werkzeug==2.0.3",
            ),
        ),
        Release(
            "0.23.2",
            ("prometheus-flask-exporter==0.23.2", "prometheus-client==0.20.0", "flask==3.0.3"),
        ),
    ),
    Pair(
        "prom-client",
        "prom_client.js",
        Release("11.5.3", ("prom-client@11.5.3",), kind="node"),
        Release("15.1.3", ("prom-client@15.1.3",), kind="node"),
    ),
)
GOSHOP = Pair(
    "goshop",
    "goshop",
    Release("1.0.0", ("v1",), kind="go"),
    Release("2.0.0", ("v2",), kind="go"),
)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per environment at a time (a test run and the regenerate script may race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _run(argv: Sequence[str], **kwargs: object) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def python_env(packages: Sequence[str]) -> Path:
    """The interpreter of a virtual environment holding exactly ``packages`` (cached)."""
    root = CACHE / "venvs" / _key(sys.version, *packages)
    python = root / "bin" / "python"
    done = root / ".complete"
    with _locked(root):
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(root)])
            pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            _run([*pip, *packages])
            done.write_text("\n".join(packages) + "\n")
    return python


def node_env(packages: Sequence[str]) -> Path:
    """A folder whose ``node_modules`` holds exactly ``packages`` (cached)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise Missing("node and npm are not installed")
    root = CACHE / "node" / _key(*packages)
    done = root / ".complete"
    with _locked(root):
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            (root / "package.json").write_text('{"private": true}\n')
            _run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *packages],
                cwd=root,
            )
            done.write_text("\n".join(packages) + "\n")
    return root / "node_modules"


#: Binaries this test session built, by source folder: a second request for one is a copy.
_BUILT: dict[Path, Path] = {}


def go_binary(source: Path, out: Path) -> Path:
    """Build a Go service offline against Debian's client_golang (GOPATH mode).

    Built once per source folder per session (even from a warm build cache, a build links for
    seconds on a loaded machine); later calls copy that binary to ``out``.
    """
    built = _BUILT.get(source)
    if built is not None and built.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, out)
        return out
    if shutil.which("go") is None:
        raise Missing("go is not installed (Debian package golang-go)")
    if not CLIENT_GOLANG.is_dir():
        package = "golang-github-prometheus-client-golang-dev"
        raise Missing(f"{CLIENT_GOLANG} is missing (Debian package {package})")
    env = {
        **os.environ,
        "GOPATH": str(GOCODE),
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "GOCACHE": str(CACHE / "go-build"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(["go", "build", "-o", str(out), "."], cwd=source, env=env)
    _BUILT[source] = out
    return out


@contextmanager
def running(pair: Pair, release: Release, workdir: Path) -> Iterator[str]:
    """Serve one release on loopback; yields its base URL, warmed up (one request served)."""
    if release.kind == "python":
        argv = [str(python_env(release.packages)), str(APPS / pair.app), release.version]
        env: dict[str, str] = {}
    elif release.kind == "node":
        modules = node_env(release.packages)
        argv = ["node", str(APPS / pair.app), release.version]
        env = {"NODE_PATH": str(modules)}
    else:
        source = REPO / "fixtures" / "services" / pair.app / release.packages[0]
        binary = go_binary(source, workdir / f"{pair.app}-{release.version}")
        argv = [str(binary), "-listen", "127.0.0.1:0"]
        env = {}
    with serving(argv, env=env) as url:
        httpx.get(f"{url}/orders", timeout=10.0).raise_for_status()
        yield url


def capture(url: str) -> dict[str, tuple[str, bytes]]:
    """``/metrics`` as Prometheus negotiates it, and as text 0.0.4 only."""
    return {
        "negotiated": fetch(f"{url}/metrics", PROMETHEUS_ACCEPT),
        "text": fetch(f"{url}/metrics", TEXT_ACCEPT),
    }


def fixture_name(release: Release, content_type: str) -> str:
    """``0.20.0.om`` for OpenMetrics, ``0.20.0.prom`` for text 0.0.4."""
    is_om = content_type.split(";")[0].strip() == "application/openmetrics-text"
    return f"{release.version}.{'om' if is_om else 'prom'}"
