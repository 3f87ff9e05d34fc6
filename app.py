"""TPO Studio entry point (also the Hugging Face Space ``app_file``).

Settings come from ``TPO_*`` environment variables; ``GRADIO_SERVER_NAME`` and
``GRADIO_SERVER_PORT`` choose where to listen (default 127.0.0.1:7860).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network call on start

from ui.server import main  # noqa: E402

if __name__ == "__main__":
    main()
