"""Config declared once: the loader, the dataclass defaults, the JSON Schema and the docs all come
from compatcheck.config.declaration; targets are typed; `compatcheck config` validates and prints
the schema; what the config claims is never recorded in a snapshot."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from compatcheck.cli import main
from compatcheck.config import (
    CommandTarget,
    ExpositionTarget,
    MetricsConfig,
    SnapshotTarget,
    StoredTarget,
    UrlTarget,
    load_config,
)
from compatcheck.config.declaration import CONFIG, Key, walk
from compatcheck.config.model import parse_duration
from compatcheck.config.schema import config_schema, render_schema
from compatcheck.errors import UsageError
from tests.test_serve_helpers import metrics_handler, serve_http

REPO = Path(__file__).resolve().parent.parent
EXPOSITION = REPO / "fixtures" / "metrics" / "renamed" / "old.prom"
VALIDATOR = jsonschema.Draft202012Validator(config_schema())


def _minimal() -> dict[str, Any]:
    return {"old": {"exposition": str(EXPOSITION)}, "new": {"url": "http://127.0.0.1:9000"}}


def _write(tmp_path: Path, data: dict[str, Any] | str) -> Path:
    path = tmp_path / "compatcheck.yaml"
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def _schema_accepts(data: Any) -> bool:
    return not list(VALIDATOR.iter_errors(data))


def test_the_schema_is_valid_draft_2020_12_and_matches_the_declaration():
    jsonschema.Draft202012Validator.check_schema(config_schema())
    props = config_schema()["properties"]
    for dotted, key in walk():
        node: dict[str, Any] = {"properties": props}
        for part in dotted.replace("[].", ".").split("."):
            node = node.get("items", node)["properties"][part]
        assert node["description"] == key.doc, dotted


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (REPO / "fixtures" / "demo").glob("*.yaml"))
)
def test_every_demo_config_is_accepted_by_the_loader_and_the_schema(name):
    path = REPO / "fixtures" / "demo" / name
    load_config(path)
    assert _schema_accepts(yaml.safe_load(path.read_text(encoding="utf-8")))


def _sections() -> Iterator[tuple[tuple[Any, ...], Key]]:
    yield (), CONFIG
    for dotted, key in walk():
        if key.keys and not dotted.startswith("new"):
            parts = dotted.replace("[]", ".0").split(".") + (
                ["0"] if key.type == "sections" else []
            )
            yield tuple(int(p) if p.isdigit() else p for p in parts), key


def _section_of(data: dict[str, Any], where: tuple[Any, ...]) -> dict[str, Any]:
    """The (created) mapping at ``where`` in a valid config, filled so that it stays valid."""
    fill: dict[Any, Any] = {"warmup": [{"path": "/"}], "migrations": {"script_location": "m"}}
    node: Any = data
    for part in where:
        if isinstance(part, int):
            node = node[part]
            continue
        node = node.setdefault(part, fill.get(part, {}))
    return node  # type: ignore[no-any-return]


@pytest.mark.parametrize(("where", "key"), [pytest.param(w, k, id=k.name) for w, k in _sections()])
def test_each_section_allows_exactly_its_declared_keys(tmp_path, where, key):
    data = _minimal()
    _section_of(data, where)["zz"] = 1
    dotted = ".".join(str(p) for p in (*where, "zz")).replace(".0.", "[0].")
    with pytest.raises(UsageError) as exc:
        load_config(_write(tmp_path, data))
    assert str(exc.value).split(": ", 1)[1] == (
        f"unknown key `{dotted}` (allowed: {', '.join(key.names())})"
    )
    assert not _schema_accepts(data)


def test_absent_keys_take_the_declared_defaults(tmp_path):
    data = _minimal()
    data["warmup"] = [{"path": "/"}]
    data["migrations"] = {"script_location": "m"}
    (tmp_path / "m").mkdir()  # a migrations folder that does not exist is refused
    cfg = load_config(_write(tmp_path, data))
    sections = {"readiness": cfg.readiness, "metrics": cfg.metrics, "warmup[]": cfg.warmup[0]}
    sections |= {"migrations": cfg.migrations, "": cfg}
    defaults = {d: k for d, k in walk() if k.default is not None}
    assert set(defaults) == {
        "readiness.path",
        "readiness.timeout",
        "readiness.interval",
        "warmup[].method",
        "warmup[].repeat",
        "metrics.path",
        "metrics.scrapes",
        "metrics.interval",
        "metrics.timeout",
        "metrics.max_bytes",
        "migrations.framework",
        "migrations.database",
        "migrations.name",
        "grace",
    }
    for dotted, key in defaults.items():
        owner, _, name = dotted.rpartition(".")
        want = parse_duration(key.default) if key.type == "duration" else key.default
        assert getattr(sections[owner], name) == want, dotted


@pytest.mark.parametrize(
    ("patch", "line", "problem"),
    [
        ({"metrics": {"scrapes": 0}}, 6, "`metrics.scrapes` must be an integer ≥ 1"),
        ({"grace": "soon"}, 5, "`grace`: 'soon' is not a duration (use e.g. 500ms, 30s, 2m)"),
        ({"new": {"url": "ftp://x"}}, 4, "`new.url` must be an http(s) URL"),
        ({"build_info": "not-a-name"}, 5, "`build_info`: 'not-a-name' is not a metric family name"),
        (
            {"warmup": [{"path": "/", "method": "FETCH"}]},
            7,
            "`warmup[0].method`: unknown method 'FETCH'",
        ),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(tmp_path, patch, line, problem):
    data = _minimal() | patch
    path = _write(tmp_path, data)
    with pytest.raises(UsageError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}:{line}: {problem}"
    assert not _schema_accepts(data)


def test_a_target_is_the_type_of_its_source(tmp_path):
    sources: dict[str, Any] = {
        "command": {"command": ["app"]},
        "url": {"url": "http://127.0.0.1:1/"},
        "exposition": {"exposition": str(EXPOSITION)},
        "stored": {"stored": "v1"},
    }
    (tmp_path / "s.json").write_text("{}", encoding="utf-8")
    sources["snapshot"] = {"snapshot": str(tmp_path / "s.json")}
    types = {
        "command": CommandTarget,
        "url": UrlTarget,
        "exposition": ExpositionTarget,
        "stored": StoredTarget,
        "snapshot": SnapshotTarget,
    }
    for kind, old in sources.items():
        cfg = load_config(_write(tmp_path, {"old": old, "new": {"url": "http://127.0.0.1:2"}}))
        assert (type(cfg.old), cfg.old.kind) == (types[kind], kind)
    url = load_config(_write(tmp_path, {"old": sources["url"], "new": sources["stored"]}))
    assert isinstance(url.old, UrlTarget) and url.old.url == "http://127.0.0.1:1"
    assert isinstance(url.new, StoredTarget) and url.new.stored == "v1" and url.new.label == "v1"


@pytest.mark.parametrize(
    ("extra", "line", "problem"),
    [
        (
            "  image: 'reg/shop:-x'\n",
            4,
            "`old.image`: image reference `reg/shop:-x`: `-x` is not a valid tag",
        ),
        (
            "  image: reg/shop:v1\n  release: {path: bin/shop, sha256: " + "0" * 64 + "}\n",
            5,
            "`old.release`: artifact `release.path` `bin/shop` must be absolute",
        ),
        (
            "  kubernetes: {deployment: shop, container: app}\n  oci_layout: l\n",
            4,
            "`old.kubernetes` needs `image` (the repository to pin)",
        ),
        (
            "  registry: reg.example\n",
            2,
            "`old`: an artifact needs `image`, `oci_layout` or `release`",
        ),
        (
            "  image: reg/shop:v1\n  kubernetes: {deployment: shop, pod: x}\n",
            5,
            "unknown key `old.kubernetes.pod` (allowed: deployment, container, namespace)",
        ),
    ],
)
def test_the_artifact_spec_is_validated_at_load_with_file_and_line(tmp_path, extra, line, problem):
    path = _write(
        tmp_path, f"\nold:\n  url: 'http://127.0.0.1:1'\n{extra}new: {{url: 'http://h:2'}}\n"
    )
    with pytest.raises(UsageError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}:{line}: {problem}")


def test_config_validate_says_ok_in_one_line(capsys):
    demo = str(REPO / "fixtures" / "demo" / "with-artifact.yaml")
    assert main(["config", "--validate", demo]) == 0
    assert capsys.readouterr() == (
        f"{demo}: OK (service `shop`: old is a command target, new a command target)\n",
        "",
    )
    assert main(["config", "--validate", "-c", demo]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_config_validate_fails_as_check_does(tmp_path, capsys):
    path = _write(
        tmp_path, "old: {url: 'http://x:1'}\nnew: {url: 'http://x:2'}\nmetrics: {pth: /m}\n"
    )
    assert main(["config", "--validate", str(path)]) == 2
    validate = capsys.readouterr()
    assert main(["check", "-q", "-c", str(path)]) == 2
    check = capsys.readouterr()
    assert (
        validate
        == check
        == (
            "",
            f"compatcheck: error: {path}:3: unknown key `metrics.pth` "
            "(allowed: path, scrapes, interval, timeout, max_bytes)\n",
        )
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("severity: {metrics/no-such-kind: error}\n", encoding="utf-8")
    path = _write(
        tmp_path, f"old: {{url: 'http://x:1'}}\nnew: {{url: 'http://x:2'}}\npolicy: [{policy}]\n"
    )
    assert main(["config", "--validate", str(path)]) == 2
    validate = capsys.readouterr()
    assert main(["check", "-q", "-c", str(path)]) == 2
    assert validate == capsys.readouterr() and str(policy) in validate.err


def test_config_schema_prints_the_published_schema(capsys):
    assert main(["config", "--schema"]) == 0
    out = capsys.readouterr().out
    assert out == render_schema() == (REPO / "docs" / "config.schema.json").read_text("utf-8")
    assert json.loads(out)["title"] == "compatcheck.yaml"


def test_the_configs_image_claim_is_not_recorded_in_the_snapshot(tmp_path, isolated_tmp):
    from compatcheck.capture import capture_snapshot
    from compatcheck.snapshot import dump_snapshot

    image = "reg.example/shop@sha256:" + "a" * 64
    with serve_http(metrics_handler(EXPOSITION)) as url:
        path = _write(tmp_path, {"old": {"url": url, "image": image}, "new": {"url": url}})
        snap = capture_snapshot(load_config(path), "old")
    assert snap.metrics is not None and snap.metrics.families
    assert snap.artifact is None
    assert image not in dump_snapshot(snap) and "sha256:" + "a" * 64 not in dump_snapshot(snap)


def test_init_writes_a_valid_config_offering_every_declared_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--service", "shop"]) == 0
    assert capsys.readouterr() == (
        "wrote compatcheck.yaml (service `shop`): edit `old` and `new`, then run "
        "`compatcheck config --validate`\n",
        "",
    )
    text = (tmp_path / "compatcheck.yaml").read_text(encoding="utf-8")
    assert main(["init"]) == 2
    assert capsys.readouterr().err == (
        "compatcheck: error: compatcheck.yaml: already exists (not replaced)\n"
    )
    assert (tmp_path / "compatcheck.yaml").read_text(encoding="utf-8") == text
    cfg = load_config(tmp_path / "compatcheck.yaml")
    assert (cfg.service, type(cfg.old), type(cfg.new)) == ("shop", CommandTarget, CommandTarget)
    assert cfg.old.command == ("{python}", "-m", "shop", "--port", "{port}")
    lines = text.splitlines()
    offered = {ln[1:].split(":")[0].strip(" -") for ln in lines if ln.startswith("#") and ":" in ln}
    sections = [k for k in CONFIG.keys if k.name not in ("service", "old", "new")]
    assert offered >= {k.name for k in sections} | {s.name for k in sections for s in k.keys}
    # Uncommented, the metrics block it shows holds the loader's defaults.
    start = next(i for i, ln in enumerate(lines) if ln.startswith("# metrics:"))
    block = [
        lines[start],
        *itertools.takewhile(lambda ln: ln.startswith("#   "), lines[start + 1 :]),
    ]
    uncommented = text + "".join(ln[2:] + "\n" for ln in block)
    assert load_config(_write(tmp_path, uncommented)).metrics == MetricsConfig()
