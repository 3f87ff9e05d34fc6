"""Reviewing preference pairs: accept, reject, swap, edit, note, restore — audited, versioned.

The generated texts and frame timestamps of a pair never change. What a reviewer does is
kept beside them: ``edited_question`` / ``edited_chosen`` / ``edited_rejected`` (edits of
the *generated* chosen and rejected sides), ``swapped`` (the generated rejected side is now
the preferred one), ``note`` and ``status``. :func:`effective` gives the pair as it should
be trained on.

Every action is one transaction that (a) changes the pair only if its version is still the
one the reviewer saw, (b) bumps the version, and (c) appends a review row with the pair's
reviewable state before and after. So two people editing one pair never overwrite each other
silently (the second save raises :class:`ConflictError` showing the newer version), and the
review rows alone can rebuild every pair's current state (:func:`replay`).

:func:`undo` reverts a reviewer's last action on a pair as a new audited action (``undo``,
pointing at the row it reverts); :func:`restore_all` puts filtered pairs back in the queue
in bulk; :func:`answer_warning` says when the chosen answer of a pair about to be accepted
is empty or looks cut off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from tpo.errors import TPOError
from tpo.store import REVIEWABLE, ConflictError, Pair, Store, StoreError, swap_sides

ACTIONS = ("accept", "reject", "swap", "edit", "note", "restore", "reset")

# What a complete answer ends with: sentence punctuation, maybe inside quotes or brackets.
SENTENCE_END = tuple(".!?…。！？")
CLOSERS = "\"'”’)]*_ \n\t"
# Characters per token assumed when a text is compared with the generator's token limit: a
# BPE token of English is ~4 characters, so 3 per token is a text that surely reached it.
CHARS_PER_TOKEN = 3

__all__ = ["ACTIONS", "BulkResult", "ConflictError", "REVIEWABLE", "UndoError", "answer_warning",
           "bulk_review", "effective", "replay", "restore_all", "review", "undo"]


class UndoError(TPOError):
    """An undo that cannot be done: nothing of this reviewer's to undo on the pair, or
    someone changed the pair since (undoing would overwrite their change)."""


def effective(pair: dict) -> dict:
    """The pair as reviewed (see :meth:`tpo.store.Pair.effective`); also for a plain dict."""
    return Pair(pair).effective()


def _changes(pair: dict, action: str, *, question: str | None, chosen: str | None,
             rejected: str | None, note: str | None) -> dict[str, Any]:
    """The reviewable columns an action sets, given the pair as the reviewer saw it."""
    if action == "accept":
        return {"status": "accepted"}
    if action == "reject":
        return {"status": "rejected"}
    if action == "restore":
        if pair["status"] != "filtered":
            raise StoreError(f"pair {pair['id']} is {pair['status']}, not filtered")
        return {"status": "pending"}
    if action == "reset":  # back to the generated texts, pending
        return {"status": "pending", "swapped": 0, "edited_question": None,
                "edited_chosen": None, "edited_rejected": None}
    if action == "swap":
        return {"swapped": 0 if pair.get("swapped") else 1}
    if action == "note":
        return {"note": note or None}
    if action == "edit":  # review() has dropped unchanged texts; at least one is left
        changes: dict[str, Any] = {}
        if question is not None:
            changes["edited_question"] = _edit(question, pair["question"])
        # Edits address the sides as shown (after a swap); store them on the generated side.
        chosen_col, rejected_col = swap_sides(pair.get("swapped"), "edited_chosen",
                                              "edited_rejected")
        originals = {"edited_chosen": pair["chosen"], "edited_rejected": pair["rejected"]}
        if chosen is not None:
            changes[chosen_col] = _edit(chosen, originals[chosen_col])
        if rejected is not None:
            changes[rejected_col] = _edit(rejected, originals[rejected_col])
        return changes
    raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")


def _edit(text: str, original: str) -> str | None:
    """An edit equal to the generated text is no edit (NULL), so "original" stays exact."""
    text = text.strip()
    if not text:
        raise ValueError("an edited text cannot be empty")
    return None if text == original else text


def review(store: Store, pair_id: int, action: str, *, user: str,
           expected_version: int | None = None, question: str | None = None,
           chosen: str | None = None, rejected: str | None = None,
           note: str | None = None) -> dict:
    """Apply one reviewer action in one transaction; returns the updated pair.

    ``expected_version`` is the version the reviewer saw (``None``: the current one). A
    stale version raises :class:`ConflictError` carrying the newer pair. A ``note`` given
    with another action is saved with it.
    """
    if not user or not user.strip():
        raise ValueError("every review needs a user name")
    with store.transaction():
        pair = store.get_pair(pair_id)
        if expected_version is not None and pair["version"] != expected_version:
            raise ConflictError(pair, expected_version)
        if action == "edit":
            # Texts equal to what is shown now are not edits: a form sends all three.
            shown = pair.effective()
            question, chosen, rejected = (
                None if new is None or new.strip() == shown[key] else new
                for key, new in (("question", question), ("chosen", chosen),
                                 ("rejected", rejected)))
            if question is None and chosen is None and rejected is None:
                if note is None or (note or None) == pair.get("note"):
                    raise ValueError("nothing to save: the texts are unchanged")
                action = "note"
        changes = _changes(pair, action, question=question, chosen=chosen, rejected=rejected,
                           note=note)
        if note is not None and action != "note":
            changes["note"] = note or None
        return store.update_pair(pair_id, changes, user=user.strip(), action=action,
                                 expected_version=pair["version"], note=note)


@dataclass
class BulkResult:
    """What a bulk action did: ``changed`` ids (moved to the target status); ``agreed`` ids
    (already in it by another reviewer's decision: this reviewer's own decision is recorded
    too, as a single Accept/Reject would, so agreement counts it); ``unchanged`` ids (already
    decided so by this reviewer, or in the status without anyone's decision); and
    ``skipped``: the pairs changed by someone since the reviewer saw them, each
    ``{"id", "seen_version", "version", "status", "user", "at"}`` (as the pair is now;
    ``status`` None for a pair deleted since)."""

    changed: list[int] = field(default_factory=list)
    agreed: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def skipped_text(self) -> str:
        """One line naming each skipped pair and who left it how, e.g. "#2 (rejected by bo)"."""
        return ", ".join(
            f"#{s['id']} (deleted)" if s["status"] is None else
            f"#{s['id']} ({s['status']}" + (f" by {s['user']}" if s["user"] else "") + ")"
            for s in self.skipped)


def bulk_review(store: Store, pairs: Mapping[int, int] | Iterable[int], action: str, *,
                user: str) -> BulkResult:
    """Accept or reject many pairs in one transaction.

    ``pairs`` maps each pair id to the version the reviewer saw; a pair whose version has
    moved on since was changed by someone else and is skipped (listed in the result), never
    overwritten. A plain list of ids means "as they are now" (for scripts that have just read
    them). A pair already in the target status gets this reviewer's decision recorded (a
    review row, a version bump) when another reviewer decided it so and this one has not;
    otherwise it is left alone.
    """
    if action not in ("accept", "reject"):
        raise ValueError("bulk actions are accept and reject")
    if not user or not user.strip():
        raise ValueError("every review needs a user name")
    seen = dict(pairs) if isinstance(pairs, Mapping) else dict.fromkeys(pairs)
    target = {"accept": "accepted", "reject": "rejected"}[action]
    result = BulkResult()
    with store.transaction():
        for pair_id, seen_version in seen.items():
            try:
                pair = store.get_pair(pair_id)
            except StoreError:  # deleted since the queue was loaded
                result.skipped.append({"id": pair_id, "seen_version": seen_version,
                                       "version": None, "status": None, "user": None, "at": None})
                continue
            if seen_version is not None and pair["version"] != seen_version:
                result.skipped.append({"id": pair_id, "seen_version": seen_version,
                                       "version": pair["version"], "status": pair["status"],
                                       "user": pair.get("last_user"), "at": pair.get("updated_at")})
                continue
            if pair["status"] == target:
                deciders = {d["user"]: d["decision"] for d in store.decisions(pair_id)}
                if not deciders or deciders.get(user.strip()) == target:
                    result.unchanged.append(pair_id)
                    continue
                result.agreed.append(pair_id)
            else:
                result.changed.append(pair_id)
            store.update_pair(pair_id, {"status": target}, user=user.strip(),
                              action=f"bulk-{action}", expected_version=pair["version"])
    return result


def undo(store: Store, pair_id: int, *, user: str) -> Pair:
    """Revert ``user``'s last action on the pair (not an undo, not undone already) as a new
    audited action ``undo``: the pair's reviewable state goes back to what it was before that
    action, the version goes up, and the review row names the row it reverts (``undoes``).
    Repeated, it walks back through the user's earlier actions on the pair. The user's
    decision on the pair (accept/reject) follows.

    Conflict-safe: when anyone changed the pair after that action (its state is no longer
    what the action left), :class:`UndoError` - undoing would overwrite their change; so it
    does when there is nothing of the user's to undo.
    """
    if not user or not user.strip():
        raise ValueError("every review needs a user name")
    user = user.strip()
    with store.transaction():
        pair = store.get_pair(pair_id)
        row = store.last_undoable(pair_id, user)
        if row is None:
            raise UndoError(f"nothing of {user}'s to undo on pair {pair_id}")
        now_state = {k: pair[k] for k in REVIEWABLE}
        if any(now_state[k] != row["after"].get(k) for k in REVIEWABLE):
            who = f" by {pair['last_user']}" if pair.get("last_user") else ""
            raise UndoError(f"pair {pair_id} was changed{who} after your {row['action']} "
                            f"(now version {pair['version']}); undoing it would overwrite "
                            "that change - reload the pair")
        changes = {k: row["before"].get(k) for k in REVIEWABLE
                   if row["before"].get(k) != now_state[k]}
        return store.update_pair(pair_id, changes, user=user, action="undo",
                                 expected_version=pair["version"], undoes=row["id"])


def restore_all(store: Store, *, user: str, reason: str | None = None) -> int:
    """Put every filtered pair back in the review queue (status pending) in one transaction,
    each with an audited ``bulk-restore`` review row; ``reason``: only those of that reason
    category (a key of :meth:`tpo.store.Store.filtered_reasons`: ``truncated``,
    ``near-identical``, ...). The filter's verdict and reason stay on the pair. Returns how
    many were restored."""
    if not user or not user.strip():
        raise ValueError("every review needs a user name")
    return store.restore_filtered(user=user.strip(), reason=reason or None)


def answer_warning(pair: dict) -> str | None:
    """A warning to show before accepting ``pair`` (a :class:`~tpo.store.Pair` or a plain
    row), or None.

    * "The chosen answer is empty" - the chosen side as reviewed is blank;
    * "The chosen answer looks truncated" - it does not end with sentence punctuation
      (``.``, ``!``, ``?``, ``…``, maybe inside closing quotes or brackets) AND the model
      probably stopped at its token limit: the generation filter recorded so for that
      generated side, or the text is at least :data:`CHARS_PER_TOKEN` characters per token
      of the generator's recorded ``max_new_tokens``. A text a reviewer edited is theirs and
      is never called truncated.
    """
    view = Pair(pair).effective()
    text = (view["chosen"] or "").strip()
    if not text:
        return "The chosen answer is empty"
    side = Pair(pair).generated_side("chosen")
    if pair.get(f"edited_{side}") or text.rstrip(CLOSERS).endswith(SENTENCE_END):
        return None
    reason = (pair.get("filter_reason") or "").lower()
    stopped = reason.startswith("truncated") and f"the {side} answer" in reason
    generator = pair.get("generator") if isinstance(pair.get("generator"), dict) else {}
    config = generator.get("config") if isinstance(generator.get("config"), dict) else {}
    limit = config.get("max_new_tokens") or generator.get("max_new_tokens")
    if stopped or (isinstance(limit, int) and len(text) >= CHARS_PER_TOKEN * limit):
        return "The chosen answer looks truncated: it stops mid-sentence at the token limit"
    return None


def replay(store: Store, pair_id: int) -> dict:
    """The pair's reviewable state rebuilt from the generated pair and its review rows
    alone (the audit trail is complete when this equals the pair's current state)."""
    pair = store.get_pair(pair_id)
    generated = "filtered" if pair.get("filter_verdict") == "dropped" else "pending"
    state = {"status": generated, "swapped": 0, "edited_question": None,
             "edited_chosen": None, "edited_rejected": None, "note": None, "version": 1}
    for row in store.reviews(pair_id):
        if row["before"]["version"] != state["version"]:
            raise StoreError(f"pair {pair_id}: review {row['id']} starts at version "
                             f"{row['before']['version']}, the replay is at {state['version']}")
        state.update(row["after"])
    return state
