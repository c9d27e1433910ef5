"""More rough edges a newcomer hits, each through the real CLI in a child
process: `init` output passes `config --validate` (and a broken key is `file:line`, exit 2),
`check` and `migrations` refuse the same bad paths with the same exit code before anything
starts, and a masked URL keeps the bracket and colon around it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from compatcheck.masking import mask_secrets
from tests.cli import REPO, run


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_init_output_passes_config_validate_and_a_typo_is_file_and_line(tmp_path: Path) -> None:
    made = run("init", "--service", "shop", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ok = run("config", "--validate", "compatcheck.yaml", cwd=tmp_path)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout == (
        "compatcheck.yaml: OK (service `shop`: old is a command target, new a command target)\n"
    )
    text = (tmp_path / "compatcheck.yaml").read_text(encoding="utf-8")
    commented = "# readiness:  # The readiness contract.\n#   path: /readyz"
    assert commented in text
    broken = text.replace(commented, "readiness:\n  paht: /readyz", 1)
    (tmp_path / "broken.yaml").write_text(broken, encoding="utf-8")
    line = broken.splitlines().index("  paht: /readyz  # Readiness endpoint.") + 1
    bad = run("config", "--validate", "broken.yaml", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith(
        f"compatcheck: error: {tmp_path}/broken.yaml:{line}: unknown key `readiness.paht` "
    )
    assert len(bad.stderr.splitlines()) == 1


def test_a_missing_migrations_folder_is_exit_2_in_check_and_in_migrations(tmp_path: Path) -> None:
    """The same input error, the same exit code, whichever command reads it."""
    mig = run("migrations", "--script-location", str(tmp_path / "nope"), "--old", "base")
    assert (mig.returncode, mig.stdout) == (2, "")
    assert (
        mig.stderr == f"compatcheck: error: migrations folder {tmp_path}/nope: no such directory\n"
    )
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(
        "service: shop\nold: {url: 'http://127.0.0.1:9'}\nnew: {url: 'http://127.0.0.1:9'}\n"
        "migrations:\n  script_location: nope\n"
    )
    chk = run("check", "-c", str(cfg))
    assert (chk.returncode, chk.stdout) == (2, "")
    assert chk.stderr.startswith(f"compatcheck: error: {cfg}:5: ")
    assert "nope does not exist" in chk.stderr and len(chk.stderr.splitlines()) == 1


@pytest.mark.parametrize("command", ["check", "migrations"])
def test_output_that_is_a_directory_stops_check_and_migrations_first(
    command: str, tmp_path: Path
) -> None:
    """Refused before anything starts: no progress line, no scrape of the (closed) URLs."""
    url = f"http://127.0.0.1:{_closed_port()}"
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(f"service: shop\nold: {{url: '{url}'}}\nnew: {{url: '{url}'}}\n")
    script = str(REPO / "fixtures" / "alembic" / "batch_mode")
    args = (
        ["check", "-c", str(cfg)]
        if command == "check"
        else ["migrations", "--script-location", script, "--old", "base", "--static"]
    )
    proc = run(*args, "-o", str(tmp_path))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert (
        proc.stderr == f"compatcheck: error: {tmp_path}: is a directory, expected a file to write\n"
    )


def test_a_masked_url_keeps_the_bracket_and_colon_around_it(tmp_path: Path) -> None:
    """The token in a metrics URL's query is masked, and only the token: the progress line keeps
    its `]` and the error its `:` (the masker used to eat them with the secret)."""
    port = _closed_port()
    url = f"http://user:s3cret@127.0.0.1:{port}/metrics?token=abc123"
    proc = run("snapshot", url, "-o", str(tmp_path / "x.json"), "--timeout", "3")
    assert proc.returncode == 3
    shown = f"http://user:***@127.0.0.1:{port}/metrics?token=***"
    assert "s3cret" not in proc.stderr and "abc123" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"compatcheck: [{shown}] using http://user:***@127.0.0.1:{port}"
    assert lines[-1].startswith(f"compatcheck: error: {shown}: nothing listens on ")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("[http://h/m?token=abc] up", "[http://h/m?token=***] up"),
        ("http://h/m?sig=a:b:c: refused", "http://h/m?sig=***: refused"),
        ("(key=abc), then", "(key=***), then"),
        ("password=pw&sslmode=require", "password=***&sslmode=require"),
        ("token=a]b c", "token=*** c"),
    ],
)
def test_the_masker_stops_at_closing_punctuation_not_inside_the_secret(
    text: str, masked: str
) -> None:
    assert mask_secrets(text) == masked
    assert mask_secrets(masked) == masked
