"""Hostile files: alias bombs, deep nesting, duplicate keys, very long exposition lines.

Each input is what an attacker (or an unlucky generator) could put where compatcheck reads a file:
the config, a policy, the hook's config, a snapshot, a rule file, an exposition. Every one must
end in one line naming the file and the problem, exit 2 (never 1, never a traceback), in bounded
time and memory. The CLI cases run the real console entry point in a child process with a time
limit, so a loader that expands a bomb fails the test instead of hanging it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from compatcheck import cli, yamlfile
from compatcheck.consumers import load_consumers
from compatcheck.errors import ExpositionError, UsageError
from compatcheck.exposition import MAX_LINE_BYTES, parse_stream, parse_text
from compatcheck.yamlfile import MAX_ALIAS_NODES, parse_yaml
from tests.cli import run as run_cli

from .test_cli_bad_input import GOOD, assert_one_line

REPO = Path(__file__).resolve().parent.parent

#: Nine levels of nine aliases: 9**9 (387 million) strings once expanded, 1 KB on disk.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The console entry point; ``timeout`` bounds what a bomb may cost."""
    return run_cli(*args, timeout=timeout)


# -- YAML: alias bombs, nesting, duplicate keys ------------------------------------------------


def test_alias_bomb_in_config_is_refused_in_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text("old: {snapshot: a.json}\nnew: {snapshot: b.json}\nextra:\n" + _indent(BOMB))
    proc = run("check", "-c", str(cfg), timeout=20)
    assert_one_line(proc, 2, str(cfg), f"aliases expand to more than {MAX_ALIAS_NODES:,}")


def test_alias_bomb_in_policy_is_refused_where_aliases_have_no_use(tmp_path: Path) -> None:
    pol = tmp_path / "policy.yaml"
    pol.write_text(BOMB)
    proc = run("diff", str(GOOD), str(GOOD), "--policy", str(pol), timeout=20)
    assert_one_line(proc, 2, f"{pol}:2: aliases (`*name`) are not allowed")


def test_alias_bomb_in_hook_config_stops_the_hook_starting(tmp_path: Path) -> None:
    cfg = tmp_path / "hook.yaml"
    cfg.write_text(f"snapshot_dir: {tmp_path}\nconsumers:\n" + _indent(BOMB))
    proc = subprocess.run(
        [sys.executable, "-m", "compatcheck.serve", "-c", str(cfg), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=REPO,
    )
    assert_one_line(proc, 2, str(cfg), "aliases expand")


def test_aliases_that_share_a_block_still_load(tmp_path: Path) -> None:
    """The config format has a use for aliases (one env block for OLD and NEW): kept."""
    doc = parse_yaml(
        "env: &env {A: '1', B: '2'}\nold: {env: *env}\nnew:\n  <<: {env: *env}\n  x: 1\n",
        tmp_path / "c.yaml",
    )
    assert doc.data["old"] == {"env": {"A": "1", "B": "2"}}
    assert doc.data["new"] == {"env": {"A": "1", "B": "2"}, "x": 1}


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"c.yaml:1: an alias refers to a node that contains it"):
        parse_yaml("a: &a [1, *a]\n", tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "old: " + "[" * 900 + "]" * 900 + "\n",  # within libyaml's own limit (1,000)
        "old:\n" + "".join(" " * i + "- \n" for i in range(1, 300)),
    ],
    ids=["flow", "block"],
)
def test_deeply_nested_config_is_one_line_exit_2(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(text)
    assert_one_line(run("check", "-c", str(cfg)), 2, str(cfg), "nested deeper than 64 levels")


def test_oversized_config_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    cfg = tmp_path / "compatcheck.yaml"
    with cfg.open("w") as fh:
        fh.write("old: {snapshot: a.json}\nnew: {snapshot: b.json}\n")
        fh.write("# " + "x" * (yamlfile.MAX_YAML_BYTES + 10) + "\n")
    assert_one_line(run("check", "-c", str(cfg)), 2, str(cfg), "larger than 8 MiB")


def test_valid_config_never_touches_the_pure_python_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large configs load in linear time with libyaml; the pure-Python parser (10x slower) is
    only the fallback where libyaml is missing, and the source of error wording."""
    if not yaml.__with_libyaml__:
        pytest.skip("libyaml is not installed")
    assert yamlfile.LOADER is yaml.CSafeLoader
    calls: list[str] = []
    real_init = yaml.SafeLoader.__init__

    def spy(self: yaml.SafeLoader, stream: str) -> None:
        calls.append("pure-python")
        real_init(self, stream)

    monkeypatch.setattr(yaml.SafeLoader, "__init__", spy)
    waivers = "".join(
        f"  - {{kind: metrics/family-removed, subject: 'f{i}_*', reason: r, expires: 2099-01-01}}\n"
        for i in range(5000)
    )
    doc = parse_yaml("waivers:\n" + waivers, tmp_path / "p.yaml", aliases=False)
    assert len(doc.data["waivers"]) == 5000
    assert doc.line_of(("waivers", 4999, "kind")) == 5001
    assert calls == []
    with pytest.raises(UsageError, match=r"p.yaml:2: invalid YAML: expected ',' or '}'"):
        parse_yaml("a: {b: 1\nc: 2}\n", tmp_path / "p.yaml")
    assert calls == ["pure-python"]  # the error is worded by the reference parser


def test_memory_and_recursion_errors_anywhere_are_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for exc in (MemoryError(), RecursionError("maximum recursion depth exceeded")):

        def boom(args: object, out: object, exc: BaseException = exc) -> int:
            raise exc

        monkeypatch.setitem(cli.COMMANDS, "rules", boom)
        assert cli.main(["rules"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("compatcheck: error: an input is "), err


# -- JSON: nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [200, 100_000])
def test_deeply_nested_snapshot_is_one_line_naming_the_file(tmp_path: Path, depth: int) -> None:
    snap = tmp_path / "deep.json"
    snap.write_text(
        '{"schema": "compatcheck.snapshot/v1", "readiness": ' + "[" * depth + "]" * depth + "}"
    )
    proc = run("diff", str(snap), str(GOOD))
    assert_one_line(proc, 2, str(snap), "nested deeper than 64 levels")


# -- JSON: dashboards --------------------------------------------------------------------------


def _dashboard_errors(path: Path) -> list[tuple[str, int | None, str]]:
    loaded = load_consumers([path])
    return [(f.subject, f.evidence["line"], f.evidence["error"]) for f in loaded.findings]


@pytest.mark.parametrize("depth", [65, 200, 100_000])
def test_deeply_nested_dashboard_is_a_parse_error(tmp_path: Path, depth: int) -> None:
    dash = tmp_path / "deep.json"
    dash.write_text(
        '{"panels": [{"targets": [{"expr": "up"}], "options": ' + "[" * depth + "]" * depth + "}]}"
    )
    assert _dashboard_errors(dash) == [
        ("file:deep.json", None, "invalid JSON: nested deeper than 64 levels")
    ]


def test_dashboard_with_a_huge_number_is_a_parse_error_not_a_crash(tmp_path: Path) -> None:
    """Python refuses to convert integers of more than 4,300 digits (a ValueError that used to
    escape the loader as an internal error, exit 3)."""
    dash = tmp_path / "big.json"
    dash.write_text('{"panels": [{"id": ' + "9" * 5000 + ', "targets": [{"expr": "up"}]}]}')
    limit = sys.get_int_max_str_digits()
    assert _dashboard_errors(dash) == [
        ("file:big.json", None, f"invalid JSON: a number of more than {limit} digits")
    ]
    proc = run("diff", str(GOOD), str(GOOD), "--consumers", str(dash))
    assert (proc.returncode, proc.stderr) == (0, "")
    assert f"`{dash}` cannot be read as a consumer: invalid JSON: a number of" in proc.stdout


# -- duplicate keys in rule files --------------------------------------------------------------


def test_duplicate_keys_in_a_rule_file_are_a_parse_error(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        "groups:\n"
        "- name: shop\n"
        "  rules:\n"
        "  - alert: Errors\n"
        "    expr: rate(http_requests_total[5m]) > 1\n"
        "    expr: vector(0)\n"
    )
    loaded = load_consumers([rules])
    assert [(f.kind, f.subject) for f in loaded.findings] == [
        ("consumers/parse-error", "file:alerts.yml")
    ]
    assert loaded.findings[0].evidence["errors"] == [{"line": 6, "error": "duplicate key `expr`"}]
    assert loaded.expressions == ()


def test_alias_bomb_in_a_rule_file_is_a_parse_error_in_bounded_time(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text("bomb:\n" + _indent(BOMB) + "groups: [{name: g, rules: [*i, *i]}]\n")
    started = time.monotonic()
    loaded = load_consumers([rules])
    assert time.monotonic() - started < 5
    assert [f.evidence["error"] for f in loaded.findings] == [
        f"aliases expand to more than {MAX_ALIAS_NODES:,} extra nodes"
    ]


# -- very long exposition lines ----------------------------------------------------------------


class _OneLine:
    """A 1 GiB exposition of one line, produced as the parser pulls it; counts what it gave."""

    def __init__(self, total: int = 1 << 30, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.given = total, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        yield b'# TYPE m gauge\nm{a="'
        block = b"x" * self.chunk
        while self.given < self.total:
            self.given += len(block)
            # Fail the test (not the machine) if the parser keeps reading the line.
            assert self.given < 64 * MAX_LINE_BYTES, "the parser read 64 MiB of one line"
            yield block


def test_a_1_gib_line_fails_fast_in_bounded_memory() -> None:
    source = _OneLine()
    tracemalloc.start()
    try:
        with pytest.raises(ExpositionError) as err:
            parse_stream(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == "line 2: line longer than 1 MiB"
    assert source.given <= MAX_LINE_BYTES + source.chunk
    assert peak < 4 * MAX_LINE_BYTES, peak


def test_a_long_line_in_memory_is_refused_without_scanning_all_of_it() -> None:
    text = "m 1\n# HELP m " + "h" * (16 * MAX_LINE_BYTES)
    with pytest.raises(ExpositionError, match=r"^line 2: line longer than 1 MiB$"):
        parse_text(text)


def test_help_text_has_its_own_cap() -> None:
    with pytest.raises(ExpositionError, match=r"^line 1: # HELP for `m` is longer than 65536"):
        parse_text("# HELP m " + "h" * 70_000 + "\nm 1\n")
    assert parse_text("# HELP m " + "h" * 60_000 + "\nm 1\n").families["m"].help == "h" * 60_000


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _seconds_to_read_one_line(length: int) -> float:
    """The best of five reads, in CPU seconds of this process: other work on a shared machine
    slows the wall clock of one read and not the other, never the CPU either read takes."""
    data = b"# TYPE m gauge\n" + b'm{a="' + b"x" * length + b'"} 1\n'
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        schema = parse_stream(_chunks(data, 256))  # a trickling server: small chunks
        best = min(best, time.process_time() - started)
        assert schema.families["m"].series == 1
    return best


def test_long_lines_cost_linear_time() -> None:
    """Scaling, not a stopwatch: a line 10x longer may cost ~10x, not ~100x (which re-scanning
    the whole pending line for a newline on every chunk costs)."""
    short, long = _seconds_to_read_one_line(100_000), _seconds_to_read_one_line(1_000_000)
    assert long / max(short, 1e-4) < 30, (short, long)


def _indent(text: str) -> str:
    return "".join("  " + line + "\n" for line in text.splitlines())
