"""Bare-metal releases: the binary exists, is executable, matches its sha256; the switch works."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from compatcheck.artifact import inspect_artifact
from compatcheck.artifact.rollback import KubernetesTarget, kubectl_command
from compatcheck.artifact.section import ArtifactSection
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
    busy = "'compatcheck: switch refused: another switch holds the lock'"
    assert r.section.rollback_command == (
        f"( flock -n 9 || {{ echo {busy} {base}/current.lock >&2; exit 1; }}; "
        f"tmp=$(mktemp -u {base}/current.tmp.XXXXXXXXXX) && "
        f'ln -sn {base}/releases/v1.2.0 "$tmp" && '
        f'{{ mv -T "$tmp" {base}/current || {{ rm -f "$tmp"; exit 1; }}; }} ) 9>{base}/current.lock'
    )
    assert r.section.release.sha256 == SHA
    assert r.section.release.executable is True


def test_rollback_command_really_switches_the_symlink(tmp_path: Path) -> None:
    """Run the emitted command in a shell: ``current`` moves from v1.3.0 to v1.2.0 in one rename."""
    base = tmp_path / "app dir; $(touch pwned)"  # hostile name: quoting must hold
    old = _release(base, "v1.2.0")
    _release(base, "v1.3.0")
    (base / "current").symlink_to(base / "releases" / "v1.3.0")
    r = inspect_artifact({"release": {"path": str(old), "sha256": SHA}})
    assert r.section.release.current_target == str(base / "releases" / "v1.3.0")
    subprocess.run(["bash", "-c", r.section.rollback_command], check=True, cwd=tmp_path)
    assert os.readlink(base / "current") == str(base / "releases" / "v1.2.0")
    assert sorted(p.name for p in base.iterdir()) == ["current", "current.lock", "releases"]
    assert not (tmp_path / "pwned").exists()
    # Running it again (already switched) is harmless and leaves no stray link inside the target.
    subprocess.run(["bash", "-c", r.section.rollback_command], check=True, cwd=tmp_path)
    assert sorted(p.name for p in (base / "releases" / "v1.2.0").iterdir()) == ["app"]


#: The switch as compatcheck printed it before it took a lock: one fixed temporary name.
UNLOCKED = "ln -sfn {target} {base}/current.tmp && mv -T {base}/current.tmp {base}/current"


def _slow_mv(tmp_path: Path, seconds: float) -> Path:
    """A folder whose ``mv`` waits before running the real one: it widens, on purpose, the
    moment between creating the temporary link and renaming it, where a second operator
    strikes."""
    folder = tmp_path / f"slow-mv-{seconds}"
    folder.mkdir()
    script = folder / "mv"
    script.write_text(f'#!/bin/sh\nsleep {seconds}\nexec {shutil.which("mv")} "$@"\n')
    script.chmod(0o755)
    return folder


def _operator(command: str, path_first: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PATH": f"{path_first}:{os.environ['PATH']}"}
    return subprocess.Popen(
        ["bash", "-c", command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _two_operators(tmp_path: Path, base: Path, first: str, second: str) -> dict[str, Any]:
    """A switches to v1.2.0; while A is between its ``ln`` and its ``mv``, B switches to
    v1.1.0. Returns each exit code, B's stderr, and where ``current`` pointed when A returned
    (B's ``mv``, if it runs at all, waits 2 s: long after A's 0.5 s)."""
    a = _operator(first, _slow_mv(tmp_path, 0.5))
    deadline = time.monotonic() + 10
    while not any(p.name.startswith("current.tmp") for p in base.iterdir()):
        assert time.monotonic() < deadline, "A never created its temporary link"
        time.sleep(0.01)
    b = _operator(second, _slow_mv(tmp_path, 2.0))
    a_rc = a.wait(timeout=30)
    at_a_exit = os.readlink(base / "current")
    _, b_err = b.communicate(timeout=30)
    return {"a": a_rc, "b": b.returncode, "b_err": b_err, "at_a_exit": at_a_exit}


def _three_releases(tmp_path: Path) -> tuple[Path, Path, Path]:
    base = tmp_path / "app"
    v12 = _release(base, "v1.2.0")
    v11 = _release(base, "v1.1.0")
    _release(base, "v1.3.0")
    (base / "current").symlink_to(base / "releases" / "v1.3.0")
    return base, v12, v11


def test_two_operators_switching_at_once_cannot_both_succeed(tmp_path: Path) -> None:
    """Run for real: B's switch is refused at once, saying why; A's switch lands A's target."""
    base, v12, v11 = _three_releases(tmp_path)
    mine = inspect_artifact({"release": {"path": str(v12), "sha256": SHA}})
    theirs = inspect_artifact({"release": {"path": str(v11), "sha256": SHA}})
    seen = _two_operators(
        tmp_path, base, mine.section.rollback_command, theirs.section.rollback_command
    )
    assert seen["a"] == 0 and seen["at_a_exit"] == str(v12.parent)
    assert seen["b"] == 1
    assert seen["b_err"] == (
        f"compatcheck: switch refused: another switch holds the lock {base}/current.lock\n"
    )
    assert os.readlink(base / "current") == str(v12.parent)
    assert sorted(p.name for p in base.iterdir()) == ["current", "current.lock", "releases"]
    # The lock is released with A's shell: B simply runs again, and gets its own target.
    subprocess.run(["bash", "-c", theirs.section.rollback_command], check=True)
    assert os.readlink(base / "current") == str(v11.parent)


def test_the_harness_catches_the_race_of_an_unlocked_switch(tmp_path: Path) -> None:
    """The same two operators with the unlocked switch: A "succeeds" with B's target. This is
    what the lock prevents, and it shows the test above can fail."""
    base, v12, v11 = _three_releases(tmp_path)
    seen = _two_operators(
        tmp_path,
        base,
        UNLOCKED.format(target=v12.parent, base=base),
        UNLOCKED.format(target=v11.parent, base=base),
    )
    assert seen["a"] == 0 and seen["at_a_exit"] == str(v11.parent)
    assert seen["b"] != 0


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
    assert f"ln -sn {path.parent} " in r.section.rollback_command


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
    command = r.section.rollback_command
    assert f"ln -sn {binary.parent} " in command
    assert f"9>{tmp_path / 'srv' / 'live.lock'}" in command


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
    run = subprocess.run(["bash", "-c", r.section.rollback_command], capture_output=True)
    assert run.returncode != 0


def test_a_release_section_round_trips_through_its_json(tmp_path: Path) -> None:
    binary = _release(tmp_path)
    r = inspect_artifact({"release": {"path": str(binary)}})
    doc = r.section.to_json()
    assert list(doc) == ["release", "rollback_command", "rollback_commands"]
    assert list(doc["release"]) == [
        "path", "directory", "current_link", "expected_sha256", "sha256", "executable",
        "current_target", "mode",
    ]  # fmt: skip
    assert ArtifactSection.from_json(doc).to_json() == doc
