"""TPO Studio: Temporal Preference Optimization for video language models.

The library behind the app and the ``tpo`` command, one subpackage per stage:

* :mod:`tpo.media` — the video library: probing, frame sampling, thumbnails, synthetic videos;
* :mod:`tpo.models` — the video-LM, the writer and judge text models, tiny and demo models;
* :mod:`tpo.generation` — TPO preference pairs, generation runs, post-filters;
* :mod:`tpo.curation` — review (audited, versioned), import and export of pairs;
* :mod:`tpo.training` — DPO + SFT fine-tuning and its job;
* :mod:`tpo.evaluation` — benchmarks, the needle suite, comparisons, the end-to-end experiment;
* :mod:`tpo.store` (all SQL) and :mod:`tpo.jobs` (background jobs and the GPU queue) serve them all.

Beside them: settings (:mod:`tpo.config`), stage configs (:mod:`tpo.configs`), access rules
(:mod:`tpo.access`), the one user-facing error base (:mod:`tpo.errors`) and the CLI
(:mod:`tpo.cli`). Nothing here imports gradio or the app.
"""

__version__ = "0.1.0"
