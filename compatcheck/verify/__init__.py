"""After the rollback: ``compatcheck verify`` asks Prometheus whether OLD really runs as its
contract says.

A rollback is done when the monitoring says so, not when the old pods run: every target reports
OLD's build, is up, the series the dashboards and alerts read are back with their labels, the
error rate is under the team's threshold, and no alert of the service fires. The modules:

* :mod:`~compatcheck.verify.client` — the Prometheus HTTP API (deadlines, size caps, one-line
  errors);
* :mod:`~compatcheck.verify.plan` — what to verify, worked out from the contract and the
  arguments before anything is asked;
* :mod:`~compatcheck.verify.checks` — one function per check, each emitting ``verify/*`` findings;
* :mod:`~compatcheck.verify.run` — the polling loop; :mod:`~compatcheck.verify.section` — the
  report's ``verify`` section; :mod:`~compatcheck.verify.cli` — the subcommand.
"""

from compatcheck.verify.section import CHECK_NAMES, VerifyCheck, VerifySection

__all__ = ["CHECK_NAMES", "VerifyCheck", "VerifySection"]
