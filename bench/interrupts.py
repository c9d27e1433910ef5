"""Stress: interrupt ``check`` and ``migrations`` at random moments; count what is left behind.

For each combination of command (``check`` on the demo with its scratch databases on the server,
``migrations`` on the demo's Alembic history) and server (PostgreSQL, MariaDB):

1. one uninterrupted run measures how long the command takes (the reference, T), and
   ``compatcheck --version`` how long the interpreter takes to start and import the CLI (S);
2. ``--count`` runs each get SIGINT or SIGTERM (chosen at random) after a delay drawn uniformly
   from [S, T] (``--from-zero``: [0, T]; a signal before Python installed its handlers just
   kills the process, before it created anything), and now and then (``--second``) a second
   signal shortly after, as an impatient person's double Ctrl-C; and ``--kills`` runs get
   SIGKILL, after which ``compatcheck cleanup`` must remove what the dead run left;
3. after every run: scratch databases named with this bench's run tag and that run's pid, the
   run's TMPDIR entries, processes carrying the bench's owner mark. Any of them is a leftover.

Prints per combination: runs, signals that landed while the command ran, exit codes, the time
from signal to exit against T (the ratio: how much of a run an interrupt costs), and the
leftovers, which must be 0. Exit status 1 when anything was left.

Run: ``python bench/interrupts.py [--count 25] [--kills 2] [--servers postgres,mariadb]
[--seed N]``; ``--count 25`` on both commands and servers is 100 interrupts. Needs the servers
of the test suite (``COMPATCHECK_TEST_POSTGRES_URL`` / ``COMPATCHECK_TEST_MYSQL_URL``).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compatcheck import leftovers  # noqa: E402
from compatcheck.interrupts import default_signals_in_child  # noqa: E402
from compatcheck.migrations.scratch import list_scratch  # noqa: E402

SERVERS = {
    "postgres": os.environ.get(
        "COMPATCHECK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get(
        "COMPATCHECK_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql"
    ),
}
DEMO = ROOT / "fixtures" / "demo"
SHOP_V2 = ROOT / "fixtures" / "services" / "shop" / "v2" / "migrations"
TAG = "b" + secrets.token_hex(3)


@dataclass
class Tally:
    runs: int = 0
    landed: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    stop: list[float] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    kills: int = 0
    reference: float = 0.0
    startup: float = 0.0


def argv_for(command: str, server: str, work: Path) -> list[str]:
    if command == "migrations":
        return ["migrations", "--script-location", str(SHOP_V2), "--old", "1a0c0ffee001",
                "--db-url", server, "--format", "json", "-q"]  # fmt: skip
    text = (DEMO / "compatcheck.yaml").read_text(encoding="utf-8")
    text = text.replace("cwd: ../", f"cwd: {DEMO.parent}/")
    text = text.replace("database: sqlite", f'database: "{server}"')
    text = text.replace("consumers: [../consumers/shop/]\n", "") + "grace: 1s\n"
    cfg = work / f"check-{server.split('+')[0]}.yaml"
    cfg.write_text(text, encoding="utf-8")
    return ["check", "-c", str(cfg), "--format", "json", "-q"]


def start(argv: list[str], tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmp), leftovers.TAG_ENV: TAG}
    return subprocess.Popen(
        [sys.executable, "-m", "compatcheck", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        preexec_fn=default_signals_in_child(),
    )


def left(server: str, pid: int, tmp: Path) -> list[str]:
    """What the run with ``pid`` left: its databases, its temp entries, any of our processes."""
    found = []
    for name in list_scratch(server):
        owner = leftovers.parse(name)
        if owner is not None and owner.tag == TAG and owner.pid == pid:
            found.append(f"database {name}")
    found += [f"temp {p.name}" for p in tmp.iterdir()]
    found += [f"process {p}" for p, owner in leftovers.marked_processes() if owner.tag == TAG]
    return found


def reference(argv: list[str], tmp: Path) -> float:
    t0 = time.monotonic()
    proc = start(argv, tmp)
    code = proc.wait(timeout=300)
    if code not in (0, 1):
        raise SystemExit(f"the uninterrupted run failed with exit code {code}: {argv}")
    return time.monotonic() - t0


def startup_time() -> float:
    """Median of three ``compatcheck --version``: interpreter start-up and the CLI's imports."""
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "compatcheck", "--version"],
                       stdout=subprocess.DEVNULL, check=True)  # fmt: skip
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def interrupted(argv: list[str], tmp: Path, reference: float, rng: random.Random, second: float,
                tally: Tally) -> None:  # fmt: skip
    sig = rng.choice((signal.SIGINT, signal.SIGTERM))
    delay = rng.uniform(min(tally.startup, reference), reference)
    proc = start(argv, tmp)
    time.sleep(delay)
    sent = time.monotonic()
    running = proc.poll() is None
    if running:
        os.kill(proc.pid, sig)
        tally.landed += 1
        if rng.random() < second:
            time.sleep(rng.uniform(0, 0.3))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        tally.leftovers.append(f"pid {proc.pid} did not stop within 120 s")
    if running:
        tally.stop.append(time.monotonic() - sent)
    tally.codes[code] += 1
    tally.runs += 1
    return_pid = proc.pid
    tally.leftovers += [f"pid {return_pid} ({sig.name} after {delay:.2f} s): {x}"
                        for x in left(argv_server(argv), return_pid, tmp)]  # fmt: skip


def argv_server(argv: list[str]) -> str:
    if "--db-url" in argv:
        return argv[argv.index("--db-url") + 1]
    text = Path(argv[argv.index("-c") + 1]).read_text(encoding="utf-8")
    return text.split('database: "', 1)[1].split('"', 1)[0]


def killed(argv: list[str], tmp: Path, reference: float, rng: random.Random, tally: Tally) -> None:
    """SIGKILL at a random moment, then ``compatcheck cleanup``: nothing may remain."""
    proc = start(argv, tmp)
    time.sleep(rng.uniform(0, reference))
    proc.kill()
    proc.wait()
    server = argv_server(argv)
    env = {**os.environ, "TMPDIR": str(tmp), leftovers.TAG_ENV: TAG}
    subprocess.run([sys.executable, "-m", "compatcheck", "cleanup", "--db-url", server, "-q"],
                   env=env, stdout=subprocess.DEVNULL, timeout=120, check=True)  # fmt: skip
    time.sleep(0.2)  # SIGKILLed processes vanish asynchronously
    tally.kills += 1
    tally.leftovers += [f"pid {proc.pid} (SIGKILL, then cleanup): {x}"
                        for x in left(server, proc.pid, tmp)]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=25, help="interrupts per combination")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILL runs per combination")
    parser.add_argument("--servers", default="postgres,mariadb")
    parser.add_argument("--commands", default="migrations,check")
    parser.add_argument("--second", type=float, default=0.2, help="share with a second signal")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--from-zero", action="store_true", help="signal from t=0, not from S")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="bench-interrupts-"))
    tallies: dict[tuple[str, str], Tally] = {}
    started = time.monotonic()
    startup = 0.0 if args.from_zero else startup_time()
    try:
        for command in args.commands.split(","):
            for name in args.servers.split(","):
                server = SERVERS[name]
                tmp = work / f"{command}-{name}"
                tmp.mkdir()
                argv = argv_for(command, server, work)
                tally = tallies[(command, name)] = Tally(startup=startup)
                tally.reference = reference(argv, tmp)
                tally.leftovers += left(server, -1, tmp)
                for _ in range(args.count):
                    interrupted(argv, tmp, tally.reference, rng, args.second, tally)
                for _ in range(args.kills):
                    killed(argv, tmp, tally.reference, rng, tally)
                print(f"{command:10} {name:8} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"seed {seed}, run tag {TAG}, start-up S {startup:.2f} s, "
          f"{time.monotonic() - started:.0f} s in all")  # fmt: skip
    print(f"{'command':10} {'server':8} {'T (s)':>6} {'runs':>5} {'landed':>6} "
          f"{'stop p50':>8} {'p95':>6} {'p50/T':>6} {'kills':>5}  "
          "exit codes  leftovers")  # fmt: skip
    total = 0
    for (command, name), t in tallies.items():
        p50 = statistics.median(t.stop) if t.stop else 0.0
        p95 = sorted(t.stop)[math.ceil(0.95 * len(t.stop)) - 1] if t.stop else 0.0
        codes = " ".join(f"{c}×{n}" for c, n in sorted(t.codes.items()))
        print(f"{command:10} {name:8} {t.reference:6.2f} {t.runs:5} {t.landed:6} {p50:8.2f} "
              f"{p95:6.2f} {p50 / t.reference:6.2f} {t.kills:5}  {codes:10}  "
              f"{len(t.leftovers)}")  # fmt: skip
        total += len(t.leftovers)
        for item in t.leftovers:
            print(f"  LEFT: {item}")
    runs = sum(t.runs for t in tallies.values())
    kills = sum(t.kills for t in tallies.values())
    print(f"{runs} interrupts, {kills} kills: {total} leftovers")
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
