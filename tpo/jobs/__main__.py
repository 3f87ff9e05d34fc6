"""``python -m tpo.jobs run --db DB ID``: the worker process :func:`tpo.jobs.submit` starts
(its command line is how a live worker is recognised: keep it)."""

import sys

from tpo.jobs.worker import main

if __name__ == "__main__":  # importing this module (a test that imports every one) runs nothing
    sys.exit(main())
