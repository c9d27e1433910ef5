"""The rule registry: every finding kind, the one check function that owns it, and its context.

Where it sits: between capture and policy (capture → compare → **checks** → policy → report →
reporters). A check is a function ``(CheckContext) -> list[Finding]`` registered with
``@check(KIND, ...)``; :func:`compatcheck.engine.evaluate` runs every registered check over one
:class:`CheckContext` and nothing else. The catalogue test, ``compatcheck rules``/``explain`` and
the README table check themselves against :func:`registered_kinds`, so a kind cannot exist in the
code without a catalogue entry, nor in the catalogue without the function that emits it.

Capture runs services, databases and registries, so some facts can only be found there (a
migration that fails, an image that cannot be read). Capture hands those in as *recorded*
findings (:attr:`CheckContext.recorded`); the check that owns their kind returns them, so every
finding in a report still comes out of exactly one registered check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from compatcheck.model import Finding
from compatcheck.snapshot import Snapshot

if TYPE_CHECKING:
    from compatcheck.artifact.section import ArtifactSection
    from compatcheck.consumers import ConsumerSet
    from compatcheck.engine import EvaluateOptions
    from compatcheck.migrations.section import MigrationsSection

T = TypeVar("T")


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may read: both snapshots, the typed sections, consumers and options.

    ``before`` is what runs now and ``after`` what the transition moves to (in a rollback, NEW
    and OLD). What several checks derive alike (the metric comparison, the consumers'
    judgement) is computed once, by the first that needs it (:meth:`memo`).
    """

    old: Snapshot
    new: Snapshot
    options: EvaluateOptions
    #: The migrations inspection, already judged for :attr:`direction`.
    migrations: MigrationsSection | None = None
    #: What was found about OLD's artifact (image, release binary, rollback command).
    artifact: ArtifactSection | None = None
    #: The consumers read (None: none given, or the metrics cannot be compared).
    consumers: ConsumerSet | None = None
    #: Findings capture produced while it had the processes and databases (see the module doc).
    recorded: tuple[Finding, ...] = ()
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def direction(self) -> str:
        return self.options.direction

    @property
    def rollback(self) -> bool:
        return self.direction == "rollback"

    @property
    def before(self) -> Snapshot:
        return self.new if self.rollback else self.old

    @property
    def after(self) -> Snapshot:
        return self.old if self.rollback else self.new

    @property
    def comparable(self) -> bool:
        """Both sides' metrics were captured, are valid and are not empty."""
        return metrics_comparable(self.before) and metrics_comparable(self.after)

    def recorded_of(self, kinds: Iterable[str]) -> list[Finding]:
        """The recorded findings of ``kinds``, in the order capture produced them."""
        wanted = frozenset(kinds)
        return [f for f in self.recorded if f.kind in wanted]

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()``'s value under ``key``, computed on the first call for this context."""
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(T, self._memo[key])


def metrics_empty(snap: Snapshot) -> bool:
    """Captured, valid, and without a single family: an empty file, an empty 200 body, a page
    of comments. Trap: comparing it would call everything removed, or (both empty) prove
    compatibility by having nothing to compare; it is "cannot tell" instead."""
    return snap.metrics is not None and not snap.metrics.errors and not snap.metrics.families


def metrics_comparable(snap: Snapshot) -> bool:
    """The snapshot's metrics can be compared: captured, valid and not empty."""
    return snap.metrics is not None and not snap.metrics.errors and not metrics_empty(snap)


CheckFunction = Callable[[CheckContext], list[Finding]]


@dataclass(frozen=True)
class Check:
    """One registered check: its function and the kinds only it emits."""

    name: str
    kinds: tuple[str, ...]
    function: CheckFunction

    def run(self, ctx: CheckContext) -> list[Finding]:
        """What capture recorded of this check's kinds, then what the check finds itself.

        A kind it does not own is a bug in the check, not a finding.
        """
        found = self.function(ctx)
        stray = sorted({f.kind for f in found} - set(self.kinds))
        if stray:
            raise AssertionError(f"check {self.name} emitted {stray[0]}, a kind it does not own")
        return [*ctx.recorded_of(self.kinds), *found]


_REGISTRY: dict[str, Check] = {}
_OWNER: dict[str, str] = {}


def check(*kinds: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated function as the one owner of ``kinds``."""

    def register(function: CheckFunction) -> CheckFunction:
        name = f"{function.__module__}.{function.__qualname__}"
        for kind in kinds:
            owner = _OWNER.get(kind)
            if owner is not None and owner != name:
                raise AssertionError(f"{kind} is owned by {owner}, not also by {name}")
            _OWNER[kind] = name
        _REGISTRY[name] = Check(name, tuple(kinds), function)
        return function

    return register


def registered() -> Mapping[str, Check]:
    """The checks registered so far, by name, in registration order.

    Complete only once :mod:`compatcheck.checks` is imported (it imports every check module);
    read the registry through that package.
    """
    return _REGISTRY
