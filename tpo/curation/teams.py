"""Curating as a team: work split among named reviewers, overlap, agreement, progress.

**Assignments** (:func:`assign`). The pairs of a queue (default: pending) that are not yet
assigned are split among the reviewers: ``by="count"`` in equal runs of consecutive ids,
``by="video"`` a whole video's pairs to one reviewer (videos dealt largest first to the
least loaded reviewer), ``by="kind"`` the reviewers shared out over the pair kinds in
proportion to their pairs (each kind's pairs then split by count; with fewer reviewers than
kinds, whole kinds are dealt as videos are). Each reviewer's "next" comes from their own
share (:func:`next_for`, :meth:`tpo.store.Store.queue_ids` with ``reviewer``): the pairs
assigned to them that they have not accepted or rejected yet. No two reviewers get the
same pair unless the project asks for **overlap**: ``overlap=k`` with
``overlap_fraction=f`` gives a random (seeded) ``f`` of the pairs ``k`` reviewers each (the
primary one and ``k - 1`` others, dealt round-robin so the extra load is even).

**Overlap and the single pair status.** Each reviewer's own accept/reject is recorded as
their *decision* on the pair (their latest one, not undone: the ``decisions`` table). The
pair's status follows the latest decision by anyone, as without teams; a reviewer's share
is "assigned to me and not yet decided by me" whatever the status, so a second reviewer
still gets a pair the first one accepted, and their accept counts as a second, agreeing
decision.

**Agreement** (:func:`agreement`) reads the decisions on pairs that two or more reviewers
decided. The raters of a pair are the reviewers it is assigned to (or, for a pair assigned
to no one, everyone who decided it). Per pair of reviewers: the pairs both decided (``n``),
percent agreement and Cohen's kappa; overall: the mean pairwise agreement per pair (Fleiss'
observed agreement) as a percent and Fleiss' kappa (the form for a varying number of raters
per item: each item's agreement over its own raters, chance from the pooled category
shares). The *disagreements* are the pairs whose raters decided differently; one is
*adjudicated* once someone not assigned to it decides it (that decision sets the status),
and :attr:`Agreement.open_disagreements` is the adjudication queue.

**Progress** (:func:`progress`): per reviewer the pairs assigned, decided, left, their
review actions and throughput - actions per hour of active time, where active time is the
sessions of their actions (a gap over :data:`SESSION_GAP_S` starts a new one), each counted
from its first action to its last plus :data:`FIRST_ACTION_S` for the first.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import combinations

from tpo.errors import TPOError
from tpo.store import PAIR_STATUSES, Store

BY = ("count", "video", "kind")
CATEGORIES = ("accepted", "rejected")  # what a decision can be
SESSION_GAP_S = 15 * 60  # s: a longer pause between two actions ends a review session
FIRST_ACTION_S = 60  # s: the time a session's first action is taken to have needed

__all__ = ["Agreement", "AssignReport", "AssignError", "BY", "agreement", "assign",
           "cohen_kappa", "fleiss_kappa", "next_for", "progress", "unassign"]


class AssignError(TPOError):
    """Assignments that cannot be made (no reviewers, too much overlap, nothing to assign)."""


@dataclass
class AssignReport:
    """What :func:`assign` did: ``per_reviewer`` pairs given to each (overlap included)."""

    by: str
    n_pairs: int  # distinct pairs assigned
    n_overlap: int  # of them, pairs given to `overlap` reviewers
    overlap: int
    per_reviewer: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        shares = ", ".join(f"{r}: {n}" for r, n in self.per_reviewer.items())
        extra = (f"; {self.n_overlap} of them to {self.overlap} reviewers each"
                 if self.n_overlap else "")
        return f"assigned {self.n_pairs} pairs by {self.by} ({shares}){extra}"

    def as_dict(self) -> dict:
        return asdict(self)


def _names(reviewers) -> list[str]:
    names = []
    for name in reviewers:
        name = str(name).strip()
        if name and name not in names:
            names.append(name)
    return names


def assign(store: Store, reviewers, *, by: str = "count", overlap: int = 1,
           overlap_fraction: float = 0.0, status: str | None = "pending", user: str,
           seed: int = 0) -> AssignReport:
    """Split the unassigned pairs with ``status`` (None: any) among ``reviewers`` (names)
    ``by`` count, video or kind, with ``overlap`` reviewers for a random ``overlap_fraction``
    of them (``overlap=1``: no overlap; the sample is drawn with ``seed``). Pairs assigned
    before keep their reviewers: run it again after new pairs arrive. ``user`` is recorded.
    """
    names = _names(reviewers)
    if not names:
        raise AssignError("name at least one reviewer")
    if by not in BY:
        raise AssignError(f"split by one of {', '.join(BY)}, not {by!r}")
    if status is not None and status not in PAIR_STATUSES:
        raise AssignError(f"status must be one of {', '.join(PAIR_STATUSES)}, got {status!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 1:
        raise AssignError(f"overlap is a number of reviewers per pair (1 or more), got {overlap!r}")
    if overlap > len(names):
        raise AssignError(f"overlap {overlap} needs at least {overlap} reviewers; "
                          f"{len(names)} named")
    if not 0.0 <= float(overlap_fraction) <= 1.0:
        raise AssignError(f"overlap_fraction is a share of the pairs, 0 to 1; got "
                          f"{overlap_fraction!r}")
    if overlap > 1 and overlap_fraction <= 0:
        raise AssignError(f"overlap {overlap}: say which share of the pairs gets it "
                          "(overlap_fraction, e.g. 0.1 for 10 %; 1 for every pair)")
    pairs = store.unassigned_pairs(status=status)
    if not pairs:
        what = f"{status} pairs" if status else "pairs"
        raise AssignError(f"no unassigned {what} to assign")
    primary = _split(pairs, names, by)
    rows = [(pair_id, reviewer, False) for pair_id, reviewer in primary.items()]
    n_overlap = 0
    if overlap > 1:
        rng = random.Random(seed)
        sample = sorted(rng.sample(sorted(primary), math.ceil(overlap_fraction * len(primary))))
        n_overlap = len(sample)
        turn = 0
        overlapped = set(sample)
        rows = [(p, r, p in overlapped) for p, r, _ in rows]
        for pair_id in sample:
            others = [n for n in names if n != primary[pair_id]]
            for k in range(overlap - 1):  # round-robin over the others: even extra load
                rows.append((pair_id, others[(turn + k) % len(others)], True))
            turn += overlap - 1
    store.add_assignments(rows, user=user)
    per = Counter(reviewer for _, reviewer, _ in rows)
    return AssignReport(by=by, n_pairs=len(primary), n_overlap=n_overlap, overlap=overlap,
                        per_reviewer={n: per.get(n, 0) for n in names})


def _split(pairs: list[tuple[int, int, str]], names: list[str], by: str) -> dict[int, str]:
    """``{pair_id: reviewer}``: each pair's primary reviewer."""
    if by == "count":
        return _by_count([p[0] for p in pairs], names)
    key = 1 if by == "video" else 2
    groups: dict = {}
    for pair in pairs:
        groups.setdefault(pair[key], []).append(pair[0])
    if by == "kind" and len(names) >= len(groups):
        return _kinds_shared(groups, names)
    return _deal_groups(groups, names)


def _by_count(ids: list[int], names: list[str]) -> dict[int, str]:
    """Equal runs of consecutive ids (sizes differ by at most one), in name order."""
    out, start = {}, 0
    for i, name in enumerate(names):
        size = len(ids) // len(names) + (i < len(ids) % len(names))
        out.update((pair_id, name) for pair_id in ids[start:start + size])
        start += size
    return out


def _deal_groups(groups: dict, names: list[str]) -> dict[int, str]:
    """Whole groups, largest first, each to the reviewer with the fewest pairs so far."""
    load = dict.fromkeys(names, 0)
    out = {}
    for _, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))):
        name = min(names, key=lambda n: (load[n], names.index(n)))
        out.update((pair_id, name) for pair_id in ids)
        load[name] += len(ids)
    return out


def _kinds_shared(groups: dict, names: list[str]) -> dict[int, str]:
    """Reviewers shared out over the kinds in proportion to their pairs (at least one each;
    largest remainders get the rest), each kind then split by count among its reviewers."""
    total = sum(len(ids) for ids in groups.values())
    kinds = sorted(groups, key=lambda k: (-len(groups[k]), str(k)))
    spare = len(names) - len(kinds)
    quota = {k: spare * len(groups[k]) / total for k in kinds}
    seats = {k: 1 + int(quota[k]) for k in kinds}
    left = len(names) - sum(seats.values())
    for k in sorted(kinds, key=lambda k: -(quota[k] - int(quota[k])))[:left]:
        seats[k] += 1
    out, start = {}, 0
    for k in kinds:
        out.update(_by_count(groups[k], names[start:start + seats[k]]))
        start += seats[k]
    return out


def unassign(store: Store, reviewers=None) -> int:
    """Take back the pairs assigned to ``reviewers`` (None: everyone) that they have not
    decided yet; returns how many assignments went."""
    names = _names(reviewers) if reviewers is not None else None
    return store.remove_assignments(names)


def next_for(store: Store, reviewer: str, after: int | None = None) -> int | None:
    """The next pair of ``reviewer``'s share not yet decided by them: the first after pair
    ``after`` (by id), else from the start (pairs they skipped come round again); None when
    their share is done. Without any assignments in the project, the next pending pair."""
    if after is not None:
        ids = store.queue_ids(reviewer=reviewer, after=after, limit=1,
                              **_unassigned_filter(store))
        if ids:
            return ids[0]
    ids = store.queue_ids(reviewer=reviewer, limit=1, **_unassigned_filter(store))
    return ids[0] if ids else None


def _unassigned_filter(store: Store) -> dict:
    # With no assignments the reviewer filter is off: the shared queue is the pending pairs.
    return {} if store.has_assignments() else {"status": "pending"}


# --------------------------------------------------------------------------------------------
# Agreement


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items: (p_o - p_e) / (1 - p_e), with
    p_e from each rater's own label shares. None for no items; 1.0 when both gave one and the
    same label throughout (agreement is perfect though chance agreement is too)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[c] * cb[c] for c in set(ca) | set(cb)) / (n * n)
    if p_e >= 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return (p_o - p_e) / (1 - p_e)


def fleiss_kappa(items: list[list[str]]) -> float | None:
    """Fleiss' kappa of items each rated by two or more raters (their number may vary):
    P_i = sum_j n_ij (n_ij - 1) / (n_i (n_i - 1)), P-bar their mean, P_e = sum_j p_j^2 with
    p_j the pooled share of category j among all ratings. None for no item."""
    items = [labels for labels in items if len(labels) >= 2]
    if not items:
        return None
    p_bar = sum(_item_agreement(labels) for labels in items) / len(items)
    pooled = Counter(label for labels in items for label in labels)
    total = sum(pooled.values())
    p_e = sum((n / total) ** 2 for n in pooled.values())
    if p_e >= 1.0:
        return 1.0 if p_bar == 1.0 else 0.0
    return (p_bar - p_e) / (1 - p_e)


def _item_agreement(labels: list[str]) -> float:
    """Share of agreeing rater pairs among an item's ratings (Fleiss' P_i)."""
    n = len(labels)
    return sum(c * (c - 1) for c in Counter(labels).values()) / (n * (n - 1))


@dataclass
class Agreement:
    """Agreement between reviewers (see the module docstring)."""

    pairs: list[dict]  # per reviewer pair: a, b, n, agree, percent, cohen
    n_items: int  # pairs decided by two or more raters
    percent: float | None  # mean pairwise agreement per item, 0..100
    fleiss: float | None
    disagreements: list[int]  # pair ids whose raters decided differently
    adjudicated: list[int]  # of them, decided since by someone not assigned to it
    raters: dict[int, dict[str, str]] = field(default_factory=dict)  # pair id -> {user: decision}

    @property
    def open_disagreements(self) -> list[int]:
        """The adjudication queue: disagreements no adjudicator has decided yet."""
        done = set(self.adjudicated)
        return [p for p in self.disagreements if p not in done]

    def rows(self) -> list[list]:
        """Table rows: ``[reviewer A, reviewer B, pairs, agree %, Cohen's kappa]`` per reviewer
        pair, then ``["all", "", items, agree %, Fleiss' kappa]``."""
        out = [[p["a"], p["b"], p["n"], _round(p["percent"], 1), _round(p["cohen"], 3)]
               for p in self.pairs]
        out.append(["all", "", self.n_items, _round(self.percent, 1), _round(self.fleiss, 3)])
        return out

    def summary(self) -> str:
        if not self.n_items:
            return "no pair has been decided by two reviewers yet"
        return (f"{self.n_items} pairs decided by 2+ reviewers: {self.percent:.1f} % agreement, "
                f"Fleiss' kappa {_fmt(self.fleiss)}; {len(self.disagreements)} disagreements "
                f"({len(self.open_disagreements)} open)")

    def as_dict(self) -> dict:
        return {"pairs": self.pairs, "n_items": self.n_items, "percent": self.percent,
                "fleiss": self.fleiss, "disagreements": self.disagreements,
                "adjudicated": self.adjudicated, "open_disagreements": self.open_disagreements}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def agreement(store: Store) -> Agreement:
    """Agreement between the reviewers on the pairs two or more of them decided."""
    by_pair: dict[int, list[dict]] = {}
    for row in store.shared_decisions():
        by_pair.setdefault(row["pair_id"], []).append(row)
    raters: dict[int, dict[str, str]] = {}
    adjudicated = []
    for pair_id, rows in by_pair.items():
        assigned = bool(rows[0]["has_assignments"])
        mine = {r["user"]: r["decision"] for r in rows if r["assigned"] or not assigned}
        if len(mine) >= 2:
            raters[pair_id] = mine
            last_rater = max(r["at"] for r in rows if r["user"] in mine)
            if assigned and any(not r["assigned"] and r["at"] >= last_rater for r in rows):
                adjudicated.append(pair_id)
    per_pair: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for decided in raters.values():
        for a, b in combinations(sorted(decided), 2):
            la, lb = per_pair.setdefault((a, b), ([], []))
            la.append(decided[a])
            lb.append(decided[b])
    pairs = []
    for (a, b), (la, lb) in sorted(per_pair.items()):
        agree = sum(x == y for x, y in zip(la, lb))
        pairs.append({"a": a, "b": b, "n": len(la), "agree": agree,
                      "percent": 100.0 * agree / len(la), "cohen": cohen_kappa(la, lb)})
    items = [list(d.values()) for d in raters.values()]
    disagreements = sorted(p for p, d in raters.items() if len(set(d.values())) > 1)
    percent = (100.0 * sum(_item_agreement(i) for i in items) / len(items)) if items else None
    return Agreement(pairs=pairs, n_items=len(items), percent=percent,
                     fleiss=fleiss_kappa(items), disagreements=disagreements,
                     adjudicated=sorted(p for p in adjudicated if p in set(disagreements)),
                     raters=raters)


# --------------------------------------------------------------------------------------------
# Progress


def progress(store: Store, *, now: datetime | None = None) -> list[dict]:
    """Per reviewer (everyone with assignments or review actions, by name): ``reviewer``,
    ``assigned``, ``done`` (assigned pairs they decided), ``left``, ``actions`` (all their
    review actions), ``actions_per_hour`` (over their active time; None before any action),
    ``last_hour`` (actions in the hour before ``now``) and ``last_at``."""
    counts = store.assignment_counts()
    times = store.review_times()
    now = now or datetime.now(timezone.utc)
    out = []
    for reviewer in sorted(set(counts) | set(times)):
        c = counts.get(reviewer, {"assigned": 0, "done": 0})
        stamps = [_parse(t) for t in times.get(reviewer, [])]
        out.append({"reviewer": reviewer, "assigned": c["assigned"], "done": c["done"],
                    "left": c["assigned"] - c["done"], "actions": len(stamps),
                    "actions_per_hour": _per_hour(stamps),
                    "last_hour": sum(now - timedelta(hours=1) <= t <= now for t in stamps),
                    "last_at": times[reviewer][-1] if stamps else None})
    return out


def _parse(stamp: str) -> datetime:
    at = datetime.fromisoformat(stamp)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _per_hour(stamps: list[datetime]) -> float | None:
    """Actions per hour of active time (sessions split at gaps over SESSION_GAP_S)."""
    if not stamps:
        return None
    stamps = sorted(stamps)
    active = FIRST_ACTION_S
    for before, after in zip(stamps, stamps[1:]):
        gap = (after - before).total_seconds()
        active += gap if gap <= SESSION_GAP_S else FIRST_ACTION_S
    return len(stamps) * 3600.0 / active
