"""TPO Studio: Temporal Preference Optimization for video language models.

The library behind the app and the ``tpo`` command: video sampling (:mod:`tpo.video`),
synthetic videos (:mod:`tpo.synth`), the SQLite store (:mod:`tpo.store`) and the library
ingest (:mod:`tpo.library`). Nothing here imports gradio.
"""

__version__ = "0.1.0"
