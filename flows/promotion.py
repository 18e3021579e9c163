"""Promotion: the only code that moves ``@champion`` and ``@previous``.

The rules (README, "Guarantees"):

- @champion moves only through a completed decision made inside the task's critical
  section, a Prefect global concurrency limit of 1 (server side, so it holds across
  workers on different machines). Inside it the champion is read again; if another run
  moved it since this run's evaluation, the decision is made again against the new one.
- Any error while deciding (registry unreadable, champion not downloadable or not
  measurable on this data, a NaN metric) *holds* the challenger: it stays registered,
  nothing moves, and a person can promote it with ``mlzoo promote TASK VERSION``.
- An alias move is write-ahead: the new champion's version is tagged with the version
  that becomes @previous before either alias is written, so a process killed between
  the two writes leaves @champion on a decided version, and :func:`repair_previous`
  (run by the next flow of the task and by ``mlzoo status``) completes the move.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from flows import faults, packaging, tracking
from flows.settings import Settings

PROMOTED, REJECTED, HELD = "promoted", "rejected", "held"
PREVIOUS_TAG = "mlzoo.previous_version"  # write-ahead record of the move that made this version @champion
LEASE_SECONDS = 60  # the shortest lease Prefect's server grants; a killed holder frees the slot after it
LEASE_TAG = "mlzoo.promotion_lease"  # on the MLflow run holding the slot: recovery frees it when the run died


@dataclass(frozen=True)
class Policy:
    """``promotion:`` in a task's params.yaml section. Strictly better is the default."""

    min_delta: float = 0.0  # the challenger must beat the champion by more than this
    must_beat_baseline: bool = False  # and, when set, beat the task's non-learned baseline

    @classmethod
    def from_params(cls, section: dict[str, Any] | None) -> Policy:
        section = dict(section or {})
        unknown = sorted(set(section) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown promotion setting(s) {unknown}; known: {[f.name for f in fields(cls)]}")
        return cls(float(section.get("min_delta", 0.0)), bool(section.get("must_beat_baseline", False)))


class PromotionHeld(RuntimeError):
    """The run finished but its challenger was held: a person has to decide.

    Raised at the very end of the flow, so the Prefect flow run shows as failed with the
    reason, and ``mlzoo run`` exits 2; ``result`` is what the flow would have returned.
    """

    def __init__(self, reason: str, result: dict[str, Any]):
        self.reason, self.result = reason, result
        super().__init__(reason)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _better(a: float, b: float, greater_is_better: bool, margin: float = 0.0) -> bool:
    return a > b + margin if greater_is_better else a < b - margin


def decide(ev, policy: Policy, task: str, version: str) -> tuple[str, str]:
    """(PROMOTED | REJECTED | HELD, reason) for challenger ``version`` evaluated as ``ev``."""
    by_hand = f"to promote it anyway: mlzoo promote {task} {version}"
    if not _finite(ev.value):
        return HELD, f"challenger {ev.metric} is {ev.value}: not a number, never promoted"
    if ev.champion_error:
        return HELD, f"champion v{ev.champion_version} {ev.champion_error}; {by_hand}"
    baseline = ev.baseline.get(ev.metric)
    if policy.must_beat_baseline and _finite(baseline) and not _better(ev.value, baseline, ev.greater_is_better):
        return REJECTED, f"{ev.metric} {ev.value:.4f} does not beat the baseline ({baseline:.4f})"
    if ev.champion_version is None:
        return PROMOTED, "no champion yet"
    if not _finite(ev.champion_value):
        return HELD, f"champion v{ev.champion_version} measured {ev.champion_value}; {by_hand}"
    versus = f"champion v{ev.champion_version} ({ev.champion_value:.4f}, {ev.champion_how})"
    if _better(ev.value, ev.champion_value, ev.greater_is_better, policy.min_delta):
        return PROMOTED, f"{ev.metric} {ev.value:.4f} beats {versus}"
    margin = f" by more than {policy.min_delta}" if policy.min_delta else ""
    return REJECTED, f"{ev.metric} {ev.value:.4f} does not beat {versus}{margin}"


# -- the critical section -----------------------------------------------------------------


def lock_name(task: str) -> str:
    return f"mlzoo-promote-{task}"


@contextmanager
def critical_section(
    task: str, timeout: float | None = None, on_lease: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the task's promotion slot on the Prefect server (created on first use, limit 1).

    A holder that dies loses its lease after :data:`LEASE_SECONDS`, so a killed run cannot
    block promotions for good; and sooner: ``on_lease(lease_id)`` records the lease on the
    holder's MLflow run, and recovery frees it (:func:`release_lease`) once that run's
    process is known dead.
    """
    # The same three calls as prefect.concurrency.sync.concurrency(), which keeps the lease id
    # to itself: recovery needs it to free a dead holder's slot.
    from prefect.client.orchestration import get_client
    from prefect.concurrency._leases import maintain_concurrency_lease
    from prefect.concurrency._sync import acquire_concurrency_slots_with_lease, release_concurrency_slots_with_lease

    if timeout is None:
        timeout = float(os.environ.get("MLZOO_PROMOTION_WAIT", 900))
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(lock_name(task), 1)
    lease = acquire_concurrency_slots_with_lease(
        [lock_name(task)], 1, timeout_seconds=timeout, lease_duration=LEASE_SECONDS, strict=True
    )
    try:
        if on_lease is not None:
            on_lease(str(lease.lease_id))
        with maintain_concurrency_lease(lease.lease_id, LEASE_SECONDS, raise_on_lease_renewal_failure=True):
            yield
    finally:
        release_concurrency_slots_with_lease(lease.lease_id)


def release_lease(lease_id: str) -> None:
    """Free a promotion slot whose holder died (a lease that expired already is a no-op)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.release_concurrency_slots_with_lease(UUID(lease_id))


# -- alias moves ----------------------------------------------------------------------------


def move_aliases(s: Settings, task: str, champion: str, previous: str | None, reason: str) -> None:
    """Make ``champion`` @champion and ``previous`` @previous, write-ahead (see the module doc)."""
    c = tracking.client(s)
    c.set_model_version_tag(task, champion, PREVIOUS_TAG, previous or "")
    c.set_model_version_tag(task, champion, "promotion", reason)
    tracking.set_alias(s, task, tracking.CHAMPION, champion)
    faults.reached("aliases")
    if previous is not None and previous != champion:
        tracking.set_alias(s, task, tracking.PREVIOUS, previous)


def repair_previous(s: Settings, task: str) -> str | None:
    """Finish an alias move that was cut between its two writes; returns what it fixed."""
    champ = tracking.get_alias(s, task, tracking.CHAMPION)
    if champ is None:
        return None
    intended = champ.tags.get(PREVIOUS_TAG) or None
    prev = tracking.get_alias(s, task, tracking.PREVIOUS)
    current = prev and str(prev.version)
    if intended and intended != str(champ.version) and current != intended:
        tracking.set_alias(s, task, tracking.PREVIOUS, intended)
        return f"@previous set to v{intended} (the move to champion v{champ.version} was cut short)"
    if current == str(champ.version):  # never leave both aliases on one version
        tracking.set_alias(s, task, tracking.PREVIOUS, None)
        return f"@previous removed: it named the champion v{champ.version} itself"
    return None


# -- the promote step -----------------------------------------------------------------------


def promote(
    s: Settings,
    task: str,
    version: str,
    ev,
    policy: Policy,
    measure: Callable[[Any], None],
    package: Callable[[str], str],
    on_lease: Callable[[str], None] | None = None,
) -> tuple[str, str]:
    """Decide, build the challenger's Bento when it wins, then move the aliases in the critical
    section. ``measure(champ)`` re-measures a champion that moved meanwhile into ``ev``;
    ``package(version)`` builds (or finds) that version's Bento; ``on_lease`` see
    :func:`critical_section`. Returns (decision, reason)."""
    try:
        decision, reason = decide(ev, policy, task, version)
        if decision == PROMOTED:
            package(version)  # before any alias moves: a champion always has its own Bento
        with critical_section(task, on_lease=on_lease):
            now = tracking.get_alias(s, task, tracking.CHAMPION)
            if (now and str(now.version)) != ev.champion_version:
                measure(now)
                decision, reason = decide(ev, policy, task, version)
                reason += " (the champion moved during this run: decided again)"
                if decision == PROMOTED:
                    package(version)
            if decision == PROMOTED:
                move_aliases(s, task, version, ev.champion_version, reason)
    except Exception as exc:  # noqa: BLE001  fail closed: whatever went wrong, nothing moves
        try:
            champ = tracking.get_alias(s, task, tracking.CHAMPION)
        except tracking.RegistryError:
            champ = None
        if champ is not None and str(champ.version) == version:  # the move happened; only @previous is pending
            return PROMOTED, f"{reason}; @previous is repaired by the next run ({exc})"
        return HELD, f"error while deciding, nothing promoted: {type(exc).__name__}: {exc}"
    return decision, reason


def promote_by_hand(s: Settings, task: str, version: str, who: str, why: str, package: Callable[[str], str]) -> str:
    """``mlzoo promote TASK VERSION``: a person's decision, recorded on the version."""
    c = tracking.client(s)
    c.get_model_version(task, version)  # raises when there is no such version
    package(version)
    with critical_section(task):
        champ = tracking.get_alias(s, task, tracking.CHAMPION)
        old = champ and str(champ.version)
        if old == version:
            return f"v{version} is already the champion"
        reason = f"promoted by hand by {who}: {why}"
        move_aliases(s, task, version, old, reason)
        c.set_model_version_tag(task, version, "promotion.by", who)
    return f"{task}: champion v{old} -> v{version} ({reason})"


def rollback(s: Settings, task: str) -> tuple[str, str]:
    """Swap @champion and @previous (so a second rollback undoes the first)."""
    with critical_section(task):
        champ = tracking.get_alias(s, task, tracking.CHAMPION)
        prev = tracking.get_alias(s, task, tracking.PREVIOUS)
        if prev is None:
            raise RuntimeError(f"'{task}' has no @previous model version to roll back to")
        if packaging.find_bento(prev) is None:  # serve the code that trained it, or nothing
            raise RuntimeError(f"v{prev.version} of '{task}' has no Bento of its own; nothing was rolled back")
        old = champ and str(champ.version)
        move_aliases(s, task, str(prev.version), old, f"rolled back from v{old}")
    return str(prev.version), f"rolled back from v{old} to v{prev.version}"
