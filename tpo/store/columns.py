"""How values are written to columns and matched in them: timestamps, JSON text, literal
searches, placeholders."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable

# Searches match text literally: % and _ typed by a person are characters, not wildcards.
LIKE_ESCAPE = "ESCAPE '\\'"


def contains_pattern(text: str) -> str:
    """A LIKE pattern (used with :data:`LIKE_ESCAPE`) matching values that contain ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def now() -> str:
    """Current UTC time as ISO-8601 with seconds, the format of every ``*_at`` column."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def encode(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-encode dict/list values so they fit TEXT columns."""
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}


def marks(values: Iterable[Any]) -> str:
    """One ``?`` placeholder per value: ``"?, ?, ?"``."""
    return ", ".join("?" for _ in values)
