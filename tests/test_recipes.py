"""Every recipe in ``recipes/`` replayed the way its tool runs it.

CI recipes run their own shell lines (taken from the YAML, not retyped here) against the fixture
expositions, with a ``compatcheck`` on PATH that is this checkout. Hook recipes (in
``test_recipes_hooks.py``) build exactly the request their tool builds (Argo's ``jsonBody`` and
headers, Flagger's webhook payload, Spinnaker's stage payload and Location polling) and send it to
a real uvicorn hook on loopback, then judge the answer with the tool's own rule (Argo: jsonPath +
successCondition, non-2xx = error; Flagger: 200-202 passes; Spinnaker: statusJsonPath against
success/terminal statuses).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck.engine import evaluate
from compatcheck.sources import load_source

from .test_serve_helpers import METRICS, REPO, SNAPSHOTS

RECIPES = REPO / "recipes"
CASES = {"compatible": 0, "renamed": 1}


def blocking_of(case: str) -> set[tuple[str, str]]:
    """(kind, subject) of the findings that make ``case`` a no-go, from the engine itself."""
    old = load_source(str(METRICS / case / "old.prom"))
    new = load_source(str(METRICS / case / "new.prom"))
    report = evaluate(old, new)
    return {
        (rf.finding.kind, rf.finding.subject)
        for rf in report.findings
        if rf.counts_against(report.fail_on)
    }


@pytest.fixture
def compatcheck_on_path(tmp_path: Path) -> dict[str, str]:
    """Environment whose ``compatcheck`` is this checkout run by this interpreter."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "compatcheck"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m compatcheck "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO)
    return env


# -- GitHub Actions ------------------------------------------------------------------------------


def gha_steps() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((RECIPES / "github-actions.yml").read_text())
    job = data["jobs"]["compatcheck"]
    assert data["defaults"]["run"]["shell"] == "bash"
    assert data["permissions"]["security-events"] == "write"
    assert set(job["env"]) == {"OLD", "NEW", "COMPATCHECK_GIT", "COMPATCHECK_REF"}
    return {step.get("name", step.get("uses", "")): step for step in job["steps"]}


def run_gha_step(step: dict[str, Any], env: dict[str, str], cwd: Path) -> int:
    # GitHub runs `shell: bash` steps as `bash --noprofile --norc -eo pipefail {0}`.
    script = cwd / "step.sh"
    script.write_text(step["run"])
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr
    return proc.returncode


@pytest.mark.parametrize("case", sorted(CASES))
def test_github_actions_recipe(
    case: str, tmp_path: Path, compatcheck_on_path: dict[str, str]
) -> None:
    steps = gha_steps()
    summary = tmp_path / "summary.md"
    env = {
        **compatcheck_on_path,
        "OLD": str(METRICS / case / "old.prom"),
        "NEW": str(METRICS / case / "new.prom"),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    check = steps["Check the rollback"]
    assert run_gha_step(check, env, tmp_path) == CASES[case]
    assert run_gha_step(steps["Step summary"], env, tmp_path) == 0
    assert steps["Step summary"]["if"] == "always()"

    upload = steps["Upload SARIF"]
    assert upload["uses"] == "github/codeql-action/upload-sarif@v3"
    assert "always()" in upload["if"]
    argv = shlex.split(check["run"])
    sarif_path = tmp_path / argv[argv.index("--output") + 1]
    assert upload["with"]["sarif_file"] == argv[argv.index("--output") + 1]
    sarif = json.loads(sarif_path.read_text())
    assert sarif["version"] == "2.1.0"
    errors = sorted(r["ruleId"] for r in sarif["runs"][0]["results"] if r["level"] == "error")
    assert errors == sorted(kind for kind, _ in blocking_of(case))

    text = summary.read_text()
    verdict = "NO-GO" if CASES[case] else "GO"
    assert verdict in text
    for kind, subject in blocking_of(case):
        assert kind in text and subject in text


def test_github_actions_recipe_fails_when_it_cannot_tell(
    tmp_path: Path, compatcheck_on_path: dict[str, str]
) -> None:
    steps = gha_steps()
    env = {
        **compatcheck_on_path,
        "OLD": str(METRICS / "exposition_invalid" / "old.prom"),
        "NEW": str(METRICS / "exposition_invalid" / "new.prom"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    assert run_gha_step(steps["Check the rollback"], env, tmp_path) == 3
    # `|| [ $? -eq 1 ]` forgives only a no-go: this step fails too (the test's own exit 1).
    assert run_gha_step(steps["Step summary"], env, tmp_path) == 1


# -- GitLab CI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_gitlab_recipe(case: str, tmp_path: Path, compatcheck_on_path: dict[str, str]) -> None:
    job = yaml.safe_load((RECIPES / "gitlab-ci.yml").read_text())["rollback-compatibility"]
    env = {
        **compatcheck_on_path,
        "OLD": str(METRICS / case / "old.prom"),
        "NEW": str(METRICS / case / "new.prom"),
    }
    assert set(job["variables"]) == {"OLD", "NEW", "COMPATCHECK_GIT", "COMPATCHECK_REF"}
    # GitLab runs each `script` line in one shell and stops at the first non-zero exit.
    code = 0
    for line in job["script"]:
        code = subprocess.run(
            ["sh", "-c", line], env=env, cwd=tmp_path, timeout=120, capture_output=True
        ).returncode
        if code:
            break
    assert code == CASES[case]
    assert job["artifacts"]["when"] == "always"
    report = tmp_path / job["artifacts"]["reports"]["junit"]
    root = ET.parse(report).getroot()
    failed = {
        tc.get("name")
        for tc in root.iter("testcase")
        if tc.find("failure") is not None or tc.find("error") is not None
    }
    assert failed == {f"{kind} {subject}" for kind, subject in blocking_of(case)}
    assert int(root.get("failures", "0")) == len(blocking_of(case))


# -- installing compatcheck (both CI recipes) -----------------------------------------------------


def install_lines(recipe: str) -> tuple[dict[str, str], list[str]]:
    """The recipe's variables and its lines that install compatcheck, as the tool runs them."""
    data = yaml.safe_load((RECIPES / recipe).read_text())
    if recipe == "github-actions.yml":
        job = data["jobs"]["compatcheck"]
        steps = {step.get("name"): step for step in job["steps"]}
        return job["env"], steps["Install compatcheck"]["run"].strip().splitlines()
    job = data["rollback-compatibility"]
    return job["variables"], list(job["before_script"])


@pytest.fixture(scope="session")
def built_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders where a recipe's build line already ran, by line: built once per session (~7 s)."""
    return {}


@pytest.mark.parametrize("recipe", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_recipes_build_from_a_pinned_tag_and_install_that_wheel(recipe: str) -> None:
    """The recipes' own lines, as the slow test below runs them: the build names a pinned ref of
    the repository, the install takes exactly the wheel built (never a package name)."""
    variables, lines = install_lines(recipe)
    assert variables["COMPATCHECK_REF"].startswith("v") and variables["COMPATCHECK_GIT"]
    assert len(lines) == 2
    build, install = lines
    assert build.startswith("pip wheel --no-deps -w dist ") and "COMPATCHECK_REF" in build
    assert "COMPATCHECK_GIT" in build
    assert install == "pip install dist/compatcheck-*.whl"


@pytest.mark.slow  # a wheel built from a git clone: seconds of pip
@pytest.mark.parametrize("recipe", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_recipes_install_a_wheel_built_from_a_pinned_tag(
    recipe: str, built_wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Never an unpublished package name: the recipe builds a wheel from a pinned ref of the
    repository, then installs that wheel. The build line runs for real against this repository's
    own commit (a ``file://`` git URL, since the tag is cut only at release: README, "Cutting a
    release"); the install line runs for real too, into a folder (``PIP_TARGET``, without
    dependencies: this interpreter has them), and the compatcheck it installed answers."""
    variables, lines = install_lines(recipe)
    version = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    assert version is not None
    # The pinned tag is the release this repository's version becomes when it is cut.
    assert variables["COMPATCHECK_REF"] == f"v{version[1]}" and variables["COMPATCHECK_GIT"]
    build, install = lines
    assert build.startswith("pip wheel --no-deps -w dist ") and "COMPATCHECK_REF" in build
    assert install == "pip install dist/compatcheck-*.whl"
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    bindir = tmp_path_factory.mktemp("pip-bin")
    (bindir / "pip").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m pip "$@"\n')
    (bindir / "pip").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "COMPATCHECK_GIT": f"file://{REPO}",
        "COMPATCHECK_REF": head,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    cwd = built_wheels.get(build)
    if cwd is None:
        cwd = tmp_path_factory.mktemp("recipe-build")
        proc = subprocess.run(
            ["bash", "-c", build], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        built_wheels[build] = cwd
    wheel = f"compatcheck-{version[1]}-py3-none-any.whl"
    assert sorted(p.name for p in (cwd / "dist").iterdir()) == [wheel]
    target = tmp_path_factory.mktemp("installed")
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", install],
        env={**env, "PIP_TARGET": str(target), "PIP_NO_DEPS": "1"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Successfully installed compatcheck-{version[1]}" in proc.stdout, proc.stdout
    # The installed wheel (not this checkout) answers, with its catalogue packaged.
    ran = subprocess.run(
        [str(target / "bin" / "compatcheck"), "explain", "metrics/renamed"],
        env={**env, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"},
        cwd=target,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0 and ran.stdout.startswith("metrics/renamed"), ran.stderr
    where = subprocess.run(
        [sys.executable, "-c", "import compatcheck; print(compatcheck.__file__)"],
        env={**env, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"},
        cwd=target,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.strip() == str(target / "compatcheck" / "__init__.py"), where.stderr


# -- systemd -------------------------------------------------------------------------------------


def unit_exec_start_pre() -> tuple[str, dict[str, str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((RECIPES / "compatcheck-preflight.service").read_text())
    service = parser["Service"]
    env = dict(kv.split("=", 1) for kv in service["Environment"].split())
    return service["ExecStartPre"], env


@pytest.mark.parametrize(
    ("target", "running", "code"),
    [("v1", "v2", 0), ("v3", "v4", 1), ("v9", "v4", 2), ("v0", "v1", 3)],
)
def test_systemd_exec_start_pre(target: str, running: str, code: int) -> None:
    line, unit_env = unit_exec_start_pre()
    # No "-" prefix: a failing ExecStartPre must keep the unit from starting.
    assert line[0] not in "-@:+!", line
    env = {**unit_env, "SNAPSHOTS": str(SNAPSHOTS / "shop"), "SHOP_TARGET": target}
    env["SHOP_RUNNING"] = running
    # systemd expands ${VAR} as one word, then splits like a shell.
    expanded = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], line)
    argv = shlex.split(expanded)
    assert argv[0] == "/usr/local/bin/compatcheck"
    proc = subprocess.run(
        [sys.executable, "-m", "compatcheck", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr


# -- conftest / OPA Rego -------------------------------------------------------------------------


def rego_eval(report: dict[str, Any], rule: str) -> set[str]:
    regopy = pytest.importorskip("regopy", reason="regopy (a Rego interpreter) is not installed")
    rego = regopy.Interpreter()
    rego.add_module("compatcheck", (RECIPES / "policy" / "compatcheck.rego").read_text())
    rego.set_input_term(json.dumps(report))
    out = rego.query(f"x := data.main.{rule}")
    assert out.ok(), str(out)
    return set(json.loads(str(out.binding("x"))))


@pytest.mark.parametrize("case", ["compatible", "renamed", "buckets_changed"])
def test_conftest_policy_denies_exactly_the_blocking_findings(case: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable, "-m", "compatcheck", "diff",
            str(METRICS / case / "old.prom"), str(METRICS / case / "new.prom"),
            "--format", "json", "--output", str(out), "--quiet",
        ],
        cwd=REPO,
        timeout=60,
        check=False,
    )  # fmt: skip
    report = json.loads(out.read_text())
    expected_deny = {
        f"{f['kind']} {f['subject']}: {f['message']}"
        for f in report["findings"]
        if f["severity"] == "error" and f["blocking"] and not f["waived"]
    }
    expected_warn = {
        f"{f['kind']} {f['subject']}: {f['message']}"
        for f in report["findings"]
        if f["severity"] == "warning" and not f["waived"]
    }
    assert rego_eval(report, "deny") == expected_deny
    assert rego_eval(report, "warn") == expected_warn
    assert bool(expected_deny) == (report["go"] is False)


def test_conftest_policy_fails_a_no_go_without_findings_and_foreign_documents() -> None:
    nogo = {"schema": "compatcheck.report/v1", "go": False, "verdict": "no-go", "fail_on": "error",
            "findings": []}  # fmt: skip
    assert rego_eval(nogo, "deny") == {"verdict no-go"}
    stricter = {"schema": "compatcheck.report/v1", "go": False, "verdict": "no-go",
                "fail_on": "warning", "findings": [
                    {"kind": "metrics/buckets-changed", "subject": "h", "message": "m",
                     "severity": "warning", "waived": False, "blocking": True}]}  # fmt: skip
    assert rego_eval(stricter, "deny") == {"metrics/buckets-changed h: m"}
    assert rego_eval({"schema": "other"}, "deny") == {
        "not a compatcheck report (schema other, expected compatcheck.report/v1)"
    }
