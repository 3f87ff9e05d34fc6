"""Tables that say a sentence when empty (:mod:`ui.tables`)."""

from __future__ import annotations

import pandas as pd

from ui.tables import table_or_note


def test_an_empty_table_is_hidden_behind_its_sentence():
    table, note = table_or_note(pd.DataFrame(columns=["a", "b"]), "Nothing <yet>.")
    assert table["visible"] is False and note["visible"] is True
    assert "Nothing &lt;yet&gt;." in note["value"]  # escaped like every note
    table, note = table_or_note(pd.DataFrame({"a": [1]}), "Nothing yet.")
    assert table["visible"] is True and note["visible"] is False
    assert table_or_note(None, "x")[1]["visible"] is True
