"""The console script leaves without the interpreter's teardown (``compatcheck.entry``): what
the teardown would do for us must still happen — stdout written to a file complete, atexit
cleanups run, non-daemon threads finished, argparse's exits kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: stdout block-buffered, as for any user without ``PYTHONUNBUFFERED`` (CI runners often set it).
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
OLD, NEW = (ROOT / "fixtures" / "snapshots" / "shop" / f"{v}.snapshot.json" for v in ("v1", "v3"))


def _python(
    code: str, *args: str, stdout: int | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=BUFFERED,
        capture_output=stdout is None,
        stdout=stdout,
        text=True,
        timeout=timeout,
    )


def test_a_report_on_stdout_redirected_to_a_file_is_whole(tmp_path: Path) -> None:
    """Block-buffered stdout (a file): everything reaches it, and the exit code is main's."""
    from compatcheck.cli import main

    out = tmp_path / "report.json"
    with out.open("w") as handle:
        proc = subprocess.run(
            [sys.executable, "-m", "compatcheck", "diff", str(OLD), str(NEW), "--format", "json"],
            cwd=ROOT,
            env=BUFFERED,
            stdout=handle,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    report = json.loads(out.read_text())
    assert report["findings"]
    with (tmp_path / "again.json").open("w") as again:
        expected = main(["diff", str(OLD), str(NEW), "--format", "json", "-o", again.name, "-q"])
    assert proc.returncode == expected


def test_atexit_cleanups_and_non_daemon_threads_finish_first(tmp_path: Path) -> None:
    code = """
        import atexit, sys, threading, time
        from pathlib import Path
        out = Path(sys.argv[1])
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        def late():
            time.sleep(0.3)
            (out / "thread").write_text("done")
        threading.Thread(target=late).start()
        sys.argv = ["compatcheck", "--help"]
        from compatcheck.entry import entry
        entry()
    """
    proc = _python(code, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "usage: compatcheck" in proc.stdout
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"


def test_argparse_exits_keep_their_codes() -> None:
    code = (
        "import sys; sys.argv = ['compatcheck', *sys.argv[1:]]; "
        "from compatcheck.entry import entry; entry()"
    )
    assert _python(code, "diff").returncode == 2
    assert _python(code, "--version").returncode == 0


def test_an_idle_executor_does_not_hold_the_exit() -> None:
    """Its workers wait for work until the executor's exit hook wakes them: leaving must run
    that hook (as the interpreter does) before waiting for threads, or it waits forever."""
    code = """
        import sys
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(2)
        assert pool.submit(sum, [1, 2]).result() == 3
        sys.argv = ["compatcheck", "--version"]
        from compatcheck.entry import entry
        entry()
    """
    assert _python(code, timeout=20).returncode == 0


def test_a_profiler_still_gets_to_write_its_results(tmp_path: Path) -> None:
    """``python -m cProfile -o FILE -m compatcheck``: cProfile writes after the program
    returns, so under a profiler the interpreter's own exit is kept."""
    out = tmp_path / "run.prof"
    proc = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "compatcheck", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


def test_ctrl_c_during_the_exit_cleanups_does_not_cut_them_short(tmp_path: Path) -> None:
    """The bad moment on purpose: SIGINT while an atexit cleanup runs (a scratch database's
    drop, a helper's stop). The cleanup finishes, the exit code is the command's, no traceback."""
    import signal
    import time

    code = """
        import atexit, signal, sys, time
        from pathlib import Path
        signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever pytest inherited
        out = Path(sys.argv[1])
        def cleanup():
            (out / "started").write_text("")
            time.sleep(1.0)
            (out / "done").write_text("")
        atexit.register(cleanup)
        sys.argv = ["compatcheck", "--version"]
        from compatcheck.entry import entry
        entry()
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        cwd=ROOT,
        env=BUFFERED,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    limit = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert proc.poll() is None and time.monotonic() < limit
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (tmp_path / "done").exists()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert out.strip()  # the version line reached stdout
