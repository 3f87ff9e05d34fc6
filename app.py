"""TPO Studio entry point (also the Hugging Face Space ``app_file``).

Settings come from ``TPO_*`` environment variables; ``GRADIO_SERVER_NAME`` and
``GRADIO_SERVER_PORT`` choose where to listen (default 127.0.0.1:7860). A database that
cannot be used (damaged, locked, full disk, unwritable folder) stops the start with one
line saying which file and what to do, and exit status 1.
"""

import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network call on start

from tpo.store import StoreError  # noqa: E402
from ui.server import main  # noqa: E402

if __name__ == "__main__":
    try:
        main()
    except StoreError as err:  # its message names the file, what happened and what to do
        sys.exit(f"TPO Studio cannot start: {err}")
