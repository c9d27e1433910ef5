"""`.ci/run` is safe on a developer's machine: it kills nothing by name, starts and enables no
system service, and deletes no folder the README tells users to create.

The script runs for real (bash), in a copy of the repository, with the system tools it calls
replaced by stubs that record how they were called: ``apt-get`` (which also records what
``policy-rc.d`` said while packages were installed), ``dpkg``, ``deb-systemd-helper``,
``update-rc.d``, ``pkill``, ``killall``, ``systemctl`` and ``python3``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_TOOLS = ("bash", "chmod", "cp", "dirname", "mkdir", "mktemp", "rm", "sed", "touch", "tr")

STUB = """#!/bin/sh
echo "{name} $*" >> "$CI_LOG"
{extra}
exit 0
"""
STUBS = {
    "apt-get": 'case "$1" in install) echo "policy-rc.d: $(tr "\\n" " " '
    '< "$COMPATCHECK_CI_POLICY_RC_D")" >> "$CI_LOG"; [ -n "$CI_FAIL_INSTALL" ] && exit 100;; esac',
    "dpkg": 'pkg="$2"; echo "/lib/systemd/system/$pkg.service"; echo "/usr/bin/$pkg"',
    "deb-systemd-helper": "",
    "update-rc.d": "",
    "pkill": "",
    "killall": "",
    "systemctl": "",
    # `python3 -m venv DIR` makes DIR/bin/activate, which defines pip and python as recorders.
    "python3": 'if [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin"; printf '
    '\'pip() { echo "pip $*" >> "$CI_LOG"; }\\n\' > "$3/bin/activate"; printf '
    '\'python() { echo "python $* [HYPOTHESIS_PROFILE=$HYPOTHESIS_PROFILE]" >> "$CI_LOG"; }\\n\' '
    '>> "$3/bin/activate"; fi',
}


def _run_ci(
    tmp_path: Path, policy_before: str | None, fail_install: bool = False
) -> tuple[subprocess.CompletedProcess[str], str, Path]:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", repo / ".ci" / "run")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "mine").write_text("the developer's environment\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REAL_TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    for name, extra in STUBS.items():
        stub = bin_dir / name
        stub.write_text(STUB.format(name=name, extra=extra))
        stub.chmod(0o755)
    policy = tmp_path / "policy-rc.d"
    if policy_before is not None:
        policy.write_text(policy_before)
    log = tmp_path / "ci.log"
    log.touch()
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "CI_LOG": str(log),
        "COMPATCHECK_CI_POLICY_RC_D": str(policy),
        **({"CI_FAIL_INSTALL": "1"} if fail_install else {}),
    }
    proc = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60
    )
    return proc, log.read_text(), repo


@pytest.mark.parametrize("before", [None, "#!/bin/sh\n# the admin's own\nexit 0\n"])
def test_ci_installs_tools_without_starting_or_enabling_services(
    tmp_path: Path, before: str | None
) -> None:
    proc, log, repo = _run_ci(tmp_path, before)
    assert proc.returncode == 0, proc.stderr + log
    calls = log.splitlines()
    assert not [c for c in calls if c.split()[0] in ("pkill", "killall", "systemctl")], log
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert len(installs) == 1 and "prometheus" in installs[0] and "docker-registry" in installs[0]
    # While the packages were installed, policy-rc.d forbade every service start.
    assert calls[calls.index(installs[0]) + 1].endswith("exit 101 ")
    assert "deb-systemd-helper disable prometheus.service" in calls
    assert "deb-systemd-helper disable docker-registry.service" in calls
    policy = tmp_path / "policy-rc.d"
    if before is None:
        assert not policy.exists()
    else:
        assert policy.read_text() == before
    # The README's .venv is the developer's: untouched. CI uses its own.
    assert (repo / ".venv" / "mine").read_text() == "the developer's environment\n"
    assert "python3 -m venv .ci/venv" in calls
    # The README's test command with the thorough hypothesis profile, then the slow and realworld
    # tests it leaves out.
    assert calls[-2:] == [
        "python -m pytest -q [HYPOTHESIS_PROFILE=ci]",
        "python -m pytest -q -m slow or realworld [HYPOTHESIS_PROFILE=ci]",
    ]
    assert ".ci/venv/" in (REPO / ".gitignore").read_text().splitlines()


def test_a_failed_install_still_restores_policy_rc_d(tmp_path: Path) -> None:
    before = "#!/bin/sh\nexit 0\n"
    proc, log, _ = _run_ci(tmp_path, before, fail_install=True)
    assert proc.returncode != 0
    assert (tmp_path / "policy-rc.d").read_text() == before
    assert "python3" not in log


def test_ci_names_no_process_to_kill() -> None:
    script = (REPO / ".ci" / "run").read_text()
    for word in ("pkill", "killall", "kill "):
        assert word not in script
    assert os.access(REPO / ".ci" / "run", os.X_OK)
