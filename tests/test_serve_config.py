"""The hook reads only its keys of compatcheck.yaml, with the same file:line errors as `check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from compatcheck.errors import UsageError
from compatcheck.serve.settings import read_config


def test_paths_are_relative_to_the_config_and_other_keys_are_ignored(tmp_path: Path) -> None:
    cfg = tmp_path / "ops" / "compatcheck.yaml"
    cfg.parent.mkdir()
    cfg.write_text(
        "service: shop\nold: {command: [x]}\n"
        "snapshot_dir: ../snapshots\npolicy: [p.yaml, ../q.yaml]\n"
        "consumers: [monitoring/, 'prometheus:http://prom:9090']\n"
    )
    conf = read_config(str(cfg))
    assert conf == {
        "snapshot_dir": str(tmp_path / "snapshots"),
        "policy": [str(cfg.parent / "p.yaml"), str(tmp_path / "q.yaml")],
        # a live source is kept as written, not made a path next to the config
        "consumers": [str(cfg.parent / "monitoring"), "prometheus:http://prom:9090"],
    }
    cfg.write_text("snapshot_dir: https://contracts.example/snapshots\n")
    assert read_config(str(cfg))["snapshot_dir"] == "https://contracts.example/snapshots"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policy: {a: 1}\n", ":1: `policy` must be a list of strings"),
        ("consumers: [a]\nconsumers: [b]\n", ":2: duplicate key `consumers`"),
        ("- a\n", ":1: the file must be a mapping of keys (got a list)"),
        ("policy: [\n", ": invalid YAML"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError) as exc:
        read_config(str(cfg))
    assert str(exc.value).startswith(str(cfg)) and message in str(exc.value)


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such config file"):
        read_config(str(tmp_path / "nope.yaml"))
