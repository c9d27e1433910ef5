"""Bare-metal releases: the binary exists, is executable, matches its sha256; the switch works."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from compatcheck.artifact import inspect_artifact
from compatcheck.artifact.rollback import KubernetesTarget, kubectl_command
from compatcheck.errors import UsageError

BINARY = b"\x7fELF fake release binary v1.2.0\n" * 1000


def _release(base: Path, version: str = "v1.2.0", mode: int = 0o755) -> Path:
    binary = base / "releases" / version / "app"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(BINARY)
    binary.chmod(mode)
    return binary


def _pairs(result: Any) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in result.findings}


SHA = hashlib.sha256(BINARY).hexdigest()


def test_matching_release_is_clean_and_gives_the_atomic_switch(tmp_path: Path) -> None:
    binary = _release(tmp_path)
    r = inspect_artifact({"release": {"path": str(binary), "sha256": f"sha256:{SHA.upper()}"}})
    assert _pairs(r) == set()
    base = shlex.quote(str(tmp_path))
    assert r.section["rollback_command"] == (
        f"ln -sfn {base}/releases/v1.2.0 {base}/current.tmp"
        f" && mv -T {base}/current.tmp {base}/current"
    )
    assert r.section["release"]["sha256"] == SHA
    assert r.section["release"]["executable"] is True


def test_rollback_command_really_switches_the_symlink(tmp_path: Path) -> None:
    """Run the emitted command in a shell: ``current`` moves from v1.3.0 to v1.2.0 in one rename."""
    base = tmp_path / "app dir; $(touch pwned)"  # hostile name: quoting must hold
    old = _release(base, "v1.2.0")
    _release(base, "v1.3.0")
    (base / "current").symlink_to(base / "releases" / "v1.3.0")
    r = inspect_artifact({"release": {"path": str(old), "sha256": SHA}})
    assert r.section["release"]["current_target"] == str(base / "releases" / "v1.3.0")
    subprocess.run(["bash", "-c", r.section["rollback_command"]], check=True, cwd=tmp_path)
    assert os.readlink(base / "current") == str(base / "releases" / "v1.2.0")
    assert not (base / "current.tmp").exists() and not (base / "current.tmp").is_symlink()
    assert not (tmp_path / "pwned").exists()
    # Running it again (already switched) is harmless and leaves no stray link inside the target.
    subprocess.run(["bash", "-c", r.section["rollback_command"]], check=True, cwd=tmp_path)
    assert sorted(p.name for p in (base / "releases" / "v1.2.0").iterdir()) == ["app"]


def test_digest_mismatch_is_version_mismatch(tmp_path: Path) -> None:
    binary = _release(tmp_path)
    r = inspect_artifact({"release": {"path": str(binary), "sha256": "0" * 64}})
    assert _pairs(r) == {("artifact/version-mismatch", str(binary))}
    (f,) = r.findings
    assert f.evidence["reason"] == "digest-mismatch"
    assert f.evidence["actual"] == SHA


def test_not_executable_is_version_mismatch(tmp_path: Path) -> None:
    binary = _release(tmp_path, mode=0o644)
    r = inspect_artifact({"release": {"path": str(binary), "sha256": SHA}})
    assert _pairs(r) == {("artifact/version-mismatch", str(binary))}
    assert r.findings[0].evidence == {
        "path": str(binary),
        "reason": "not-executable",
        "mode": "0644",
    }


def test_directory_instead_of_binary(tmp_path: Path) -> None:
    path = tmp_path / "releases" / "v1.2.0" / "app"
    path.mkdir(parents=True)
    r = inspect_artifact({"release": {"path": str(path), "sha256": SHA}})
    assert _pairs(r) == {("artifact/version-mismatch", str(path))}
    assert r.findings[0].evidence["reason"] == "not-a-file"


def test_missing_binary_is_unavailable_and_missing_digest_not_pinned(tmp_path: Path) -> None:
    path = tmp_path / "releases" / "v1.2.0" / "app"
    r = inspect_artifact({"release": {"path": str(path)}})
    assert _pairs(r) == {
        ("check/unavailable", "old:artifact"),
        ("artifact/not-pinned", str(path)),
    }
    # The command is still given: the report says why it must not be run yet.
    assert r.section["rollback_command"].startswith("ln -sfn ")


def test_symlinked_binary_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "store" / "app-1.2.0"
    real.parent.mkdir()
    real.write_bytes(BINARY)
    real.chmod(0o755)
    link = tmp_path / "releases" / "v1.2.0" / "app"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    r = inspect_artifact({"release": {"path": str(link), "sha256": SHA}}, role="new")
    assert _pairs(r) == set()


def test_explicit_current_link(tmp_path: Path) -> None:
    binary = tmp_path / "srv" / "shop-1.2.0" / "bin" / "shop"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(BINARY)
    binary.chmod(0o700)
    r = inspect_artifact(
        {
            "release": {
                "path": str(binary),
                "sha256": SHA,
                "current_link": str(tmp_path / "srv" / "live"),
            }
        }
    )
    assert _pairs(r) == set()
    assert r.section["rollback_command"].startswith(f"ln -sfn {binary.parent} ")


@pytest.mark.parametrize(
    ("release", "fragment"),
    [
        ({"path": "releases/v1/app", "sha256": SHA}, "must be absolute"),
        ({"path": "/opt/app/v1/app", "sha256": SHA}, "`release.current_link` is required"),
        ({"path": "/opt/app/releases/v1/app", "sha256": "abc"}, "is not a sha256 hex digest"),
        ({"path": "/opt/app/releases/v1/app", "md5": "x"}, "unknown key `md5`"),
        ({"path": "/opt/app/releases/v1/app", "current_link": "cur"}, "must be an absolute path"),
        ("/opt/app", "must be a mapping"),
    ],
)
def test_bad_release_spec(release: Any, fragment: str) -> None:
    with pytest.raises(UsageError) as err:
        inspect_artifact({"release": release})
    assert fragment in str(err.value)


def test_kubectl_command_quotes_every_word() -> None:
    cmd = kubectl_command(
        KubernetesTarget("shop api", "app", "team's ns"), "reg/shop@sha256:" + "a" * 64
    )
    assert shlex.split(cmd) == [
        "kubectl",
        "set",
        "image",
        "deployment/shop api",
        "app=reg/shop@sha256:" + "a" * 64,
        "-n",
        "team's ns",
    ]


def test_current_that_is_a_real_directory_cannot_be_switched(tmp_path: Path) -> None:
    binary = _release(tmp_path)
    (tmp_path / "current").mkdir()
    r = inspect_artifact({"release": {"path": str(binary), "sha256": SHA}})
    assert _pairs(r) == {("check/unavailable", "old:artifact")}
    assert r.findings[0].message == (
        f"`{tmp_path / 'current'}` is a real directory or file, not a symlink; the switch "
        "command cannot replace it."
    )
    # And indeed: the emitted command fails on it.
    run = subprocess.run(["bash", "-c", r.section["rollback_command"]], capture_output=True)
    assert run.returncode != 0
