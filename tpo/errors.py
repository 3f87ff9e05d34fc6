"""The one base of every error a person can act on.

Library functions raise a subclass of :class:`TPOError` for anything the user can fix (a
missing file, a model folder that is not a video-LM, a pair changed by someone else, a full
disk, a refused action). The shells catch ``TPOError`` alone: the CLI prints its message
as one line and exits 1, the app shows it in the page. Anything else is a bug and surfaces as
one (the CLI's traceback, the app's log), never dressed up as a user message.
"""

from __future__ import annotations


class TPOError(Exception):
    """An error with a message meant for the person: what happened and what to do."""
