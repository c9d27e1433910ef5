"""The code-only rollback plan's judging, on data: :func:`judge_trial`, :func:`judge_plans` and
:func:`verify_code_only` are pure, so every rule of the verdict is tested here without a run
(the real trials are in ``test_codeonly.py``).
"""

from __future__ import annotations

from typing import Any

from compatcheck.migrations.plans import (
    RUNTIME_FAILURE,
    CodeOnlyTrial,
    error_line,
    judge_plans,
    judge_trial,
    verify_code_only,
)
from compatcheck.migrations.section import Exchange, MigrationsSection
from compatcheck.model import Finding

STATIC = Finding(
    "migrations/old-code-incompatible",
    "2b0c0ffee002",
    "OLD's code cannot run on the schema after `2b0c0ffee002`: column-renamed `orders.customer`.",
    {"reason": "column-renamed", "columns": ["orders.customer"]},
)
SECTION = {"old_head": "a1", "new_head": "b2", "downgrade_path": ["b2"], "plans": []}
#: A downgrade plan with nothing against it, judged after a round trip.
DOWNGRADE_SAFE = {
    "name": "downgrade",
    "safe": True,
    "reasons": [],
    "basis": "roundtrip",
    "status": "safe",
}


def _verify(findings: list[Finding], trial: CodeOnlyTrial) -> tuple[list[Finding], Any]:
    """:func:`verify_code_only` on :data:`SECTION`, the section as the report writes it."""
    out, section = verify_code_only(findings, MigrationsSection.from_json(SECTION), trial)
    return out, section.to_json()


def _ex(method: str, path: str, status: int | None, log: str = "") -> Exchange:
    error = None if status is not None else "server closed the connection: Server disconnected"
    return Exchange(method, path, status, error, log)


def test_only_2xx_that_breaks_server_side_counts_against_the_plan():
    baseline = [
        _ex("GET", "/a", 200),
        _ex("POST", "/b", 201),
        _ex("POST", "/b", 201),
        _ex("POST", "/c", 422),  # rejected on OLD's own database too: not the schema's doing
        _ex("GET", "/d", 500),  # broken on OLD's own database already
        _ex("GET", "/e", 200),
    ]
    trial = [
        _ex("GET", "/a", 200),
        _ex("POST", "/b", 201),
        _ex("POST", "/b", 500, "sqlite3.IntegrityError: UNIQUE constraint failed: t.x"),
        _ex("POST", "/c", 500),
        _ex("GET", "/d", 500),
        _ex("GET", "/e", 404),  # OLD's own judgement (4xx), not a crash
    ]
    judged = judge_trial(baseline, trial, log_tail="tail")
    assert judged.verified and not judged.safe
    assert judged.failures == (
        "OLD on NEW's schema: `POST /b` → 500 (1 of 2; "
        "log: `sqlite3.IntegrityError: UNIQUE constraint failed: t.x`)",
    )
    assert judged.requests == (
        {
            "method": "POST",
            "path": "/b",
            "status": 500,
            "log": "sqlite3.IntegrityError: UNIQUE constraint failed: t.x",
            "own_database_status": 201,
        },
    )


def test_no_answer_and_exit_during_warmup_are_failures():
    judged = judge_trial([_ex("GET", "/a", 200)], [_ex("GET", "/a", None)], exit_code=1)
    assert judged.failures == (
        "OLD on NEW's schema: `GET /a` → connection closed without a response (1 of 1)",
        "OLD on NEW's schema: exited with code 1 during the warm-up",
    )


def test_startup_failure_names_the_logged_error():
    log = "Traceback (most recent call last):\n  File 'x'\nRuntimeError: no column items.name\n"
    judged = judge_trial(
        [], [], startup_error="exited with code 4 before it was ready", startup_log=log
    )
    assert judged.failures == (
        "OLD on NEW's schema: exited with code 4 before it was ready "
        "(log: `RuntimeError: no column items.name`)",
    )


def test_without_a_baseline_nothing_is_blamed_on_the_schema():
    judged = judge_trial(None, [_ex("GET", "/a", None)], startup_error="exited with code 3")
    assert (judged.verified, judged.failures) == (False, ())
    assert judged.note.startswith("OLD did not come up on its own database")


def test_error_line_prefers_the_exception_over_sqlalchemy_trailers():
    chunk = (
        "----------------------------------------\n"
        "Traceback (most recent call last):\n"
        '  File "/x.py", line 1, in f\n'
        "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) no such column: customer\n"
        "[SQL: SELECT customer FROM orders]\n"
        "(Background on this error at: https://sqlalche.me/e/20/e3q8)\n"
        "----------------------------------------\n"
    )
    assert error_line(chunk) == (
        "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) no such column: customer"
    )
    assert error_line("listening\nshutting down\n") == "shutting down"
    assert error_line("") == ""
    assert error_line("E" * 300) == "E" * 199 + "…"


def test_runtime_failure_becomes_a_finding_only_when_nothing_static_covers_it():
    broken = CodeOnlyTrial(
        verified=True,
        failures=("OLD on NEW's schema: `POST /b` → 500 (1 of 2)",),
        requests=({"method": "POST", "path": "/b", "status": 500, "own_database_status": 201},),
        log_tail="sqlite3.IntegrityError: UNIQUE constraint failed: t.x",
    )
    findings, section = _verify([], broken)
    assert [(f.kind, f.subject) for f in findings] == [("migrations/old-code-incompatible", "b2")]
    assert findings[0].evidence == {
        "reason": RUNTIME_FAILURE,
        "failures": list(broken.failures),
        "requests": list(broken.requests),
        "log_tail": broken.log_tail,
    }
    assert findings[0].message == (
        "OLD's code fails on NEW's schema at `b2` (runtime-failure): `POST /b` → 500 (1 of 2)."
    )
    assert section["plans"] == [
        {
            "name": "code-only",
            "verified": True,
            "safe": False,
            "reasons": list(broken.failures),
            "basis": "runtime",
            "status": "UNSAFE; verified: OLD was started on NEW's schema",
        },
        DOWNGRADE_SAFE,
    ]
    assert section["recommended"] == "downgrade"
    assert SECTION["plans"] == []  # the input section is not modified

    findings, section = _verify([STATIC], broken)
    assert findings == [STATIC]
    assert section["plans"][0]["reasons"] == [
        f"{STATIC.kind} {STATIC.subject}: {STATIC.message}",
        *broken.failures,
    ]


def test_a_clean_trial_verifies_but_does_not_clear_a_static_concern():
    clean = CodeOnlyTrial(verified=True, replayed=1, exercised=True)
    _, section = _verify([], clean)
    assert section["plans"][0] == {
        "name": "code-only",
        "verified": True,
        "safe": True,
        "reasons": [],
        "basis": "runtime",
        "status": "safe; verified: OLD ran on NEW's schema (1 warm-up request replayed)",
    }
    assert section["recommended"] == "code-only"
    _, section = _verify([STATIC], clean)
    assert section["plans"][0]["safe"] is False and section["plans"][0]["verified"] is True


def test_an_untried_plan_says_why_and_keeps_its_static_judgement():
    untried = CodeOnlyTrial(verified=False, note="OLD is a `url` target")
    plans, recommended = judge_plans([], untried)
    assert plans[0].to_json() == {
        "name": "code-only",
        "verified": False,
        "verification": "OLD is a `url` target",
        "safe": True,
        "reasons": [],
        "basis": "static",
        "basis_reason": "OLD is a `url` target",
        "status": "safe; not exercised (OLD is a `url` target); "
        "the plan's safety comes from static analysis alone",
    }
    assert recommended == "code-only"
    # Without a trial (``compatcheck migrations``) the plan says OLD's code never ran.
    assert judge_plans([])[0][0].to_json() == {
        "name": "code-only",
        "safe": True,
        "reasons": [],
        "basis": "static",
        "basis_reason": "`compatcheck migrations` starts no release",
        "status": "safe; not exercised (`compatcheck migrations` starts no release); "
        "the plan's safety comes from static analysis alone",
    }


def test_no_warmup_requests_means_not_exercised_never_verified():
    """OLD came up on NEW's schema, but nothing was replayed: that verifies nothing."""
    quiet = judge_trial([], [])
    assert (quiet.verified, quiet.safe, quiet.exercised, quiet.note) == (
        False,
        False,
        False,
        "no warm-up requests",
    )
    assert quiet.status == "not exercised (no warm-up requests)"
    # A failure to start is still observed without any warm-up: that is verified (unsafe).
    crashed = judge_trial([], [], startup_error="exited with code 1 before it was ready")
    assert (crashed.verified, crashed.safe) == (True, False)
