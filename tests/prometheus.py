"""A real Prometheus for the tests (Debian's ``prometheus``), and the shop it scrapes.

Prometheus gets a generated config that scrapes one loopback address every second and evaluates
its rules every second, its TSDB in the test's temp folder, and a port found free; it runs in its
own process group and is stopped (SIGTERM, then SIGKILL) when the block ends. The shop is
started on that one address, so stopping one release and starting another there is a rollback
as Prometheus sees it: same target, another build.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from tests.conftest import FIXTURES, skip_or_fail
from tests.services import serving

SHOP = FIXTURES / "services" / "shop"

#: The alert rule Prometheus loads: a 5xx ratio over 1.5 % fires at once.
ALERT_RULES = """\
groups:
  - name: shop
    rules:
      - alert: ShopHighErrorRate
        expr: |
          sum by (job) (rate(shop_http_requests_total{status=~"5.."}[5s]))
            / sum by (job) (rate(shop_http_requests_total[5s])) > 0.015
        for: 0s
        labels: {severity: page}
"""


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        skip_or_fail("prometheus is not installed (apt-get install prometheus)")
    return path


def free_port() -> int:
    from compatcheck.targets import free_port as _free

    return _free()


@contextmanager
def running_prometheus(tmp: Path, target: str, rules: str = ALERT_RULES) -> Iterator[str]:
    """Start Prometheus scraping ``target`` (``host:port``, job ``shop``); yields its URL."""
    binary = prometheus_binary()
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rules.yml").write_text(rules)
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}\n"
        f"rule_files: [{tmp / 'rules.yml'}]\n"
        "scrape_configs:\n"
        f"  - job_name: shop\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",  # POST /-/reload: a test changes the rules Prometheus has
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(tmp / 'prometheus.log').read_text()}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus not ready within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def shop_database(tmp: Path, release: str) -> str:
    """A SQLite database migrated to ``release``'s head (each release has its own)."""
    from compatcheck.migrations.sources.alembic.runner import migrate_to_head

    url = f"sqlite:///{tmp / f'shop-{release}.sqlite'}"
    migrate_to_head(SHOP / release / "migrations", url)
    return url


@contextmanager
def running_shop(tmp: Path, release: str, port: int, error_rate: float = 0.0) -> Iterator[str]:
    """The shop ``release`` on ``127.0.0.1:port``; yields its base URL."""
    env = {"DATABASE_URL": shop_database(tmp, release), "SHOP_ERROR_RATE": str(error_rate)}
    argv = [sys.executable, "-m", "shop", "--host", "127.0.0.1", "--port", str(port)]
    with serving(argv, env=env, cwd=SHOP / release) as url:
        yield url


@contextmanager
def traffic(base_url: str, *, orders: bool = True) -> Iterator[None]:
    """Requests to the shop every 20 ms until the block ends (errors ignored: the shop behind
    the address is stopped and started during a rollback)."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=2) as client:
            while not stop.is_set():
                with suppress(httpx.HTTPError):
                    client.get(f"{base_url}/products")
                    if orders:
                        body = {"product_id": 1, "quantity": 1, "customer": "ada"}
                        client.post(f"{base_url}/orders", json=body)
                stop.wait(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def wait_for(url: str, query: str, predicate: object, timeout: float = 20.0) -> None:
    """Poll Prometheus until ``predicate(result)`` holds for the instant query ``query``."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    result: object = None
    while time.monotonic() < deadline:
        doc = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
        result = doc["data"]["result"]
        if predicate(result):
            return
        time.sleep(0.2)
    raise AssertionError(f"{query}: still {result!r} after {timeout} s")


def wait_for_scrapes(url: str, series: str, count: int = 2, timeout: float = 20.0) -> None:
    """Until Prometheus holds ``count`` samples of ``series`` from the last 10 s: a rate (and so
    an error ratio) needs two scrapes of a target, and one scrape is not yet an answer."""
    wait_for(url, f"count_over_time({series}[10s]) >= {count}", bool, timeout)


@contextmanager
def scraped_v1(
    tmp: Path, *, error_rate: float = 0.0, requests: bool = True, orders: bool = True
) -> Iterator[str]:
    """The shop's release v1 scraped by a real Prometheus, with ``traffic`` unless ``requests``
    is false (a release nobody calls has no rate to judge); yields Prometheus's URL. The state
    a verify finds after a finished rollback."""
    port = free_port()
    with (
        running_prometheus(tmp / "prometheus", f"127.0.0.1:{port}") as prom,
        running_shop(tmp, "v1", port, error_rate=error_rate) as shop,
    ):
        if not requests:
            yield prom
            return
        with traffic(shop, orders=orders):
            yield prom
