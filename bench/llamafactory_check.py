"""Read a `tpo export --format llamafactory` folder with LLaMA-Factory's OWN parser and
converter, and say how many rows survive (LLaMA-Factory drops rows it cannot convert).

LLaMA-Factory does not install beside TPO Studio's pins, so put its unpacked wheel on the
path instead of installing it (no dependency is changed)::

    pip download llamafactory==0.9.5 --no-deps -d /tmp/lf
    unzip -q /tmp/lf/llamafactory-0.9.5-py3-none-any.whl -d /tmp/lf/src
    mkdir -p /tmp/lf/stub/torchaudio && touch /tmp/lf/stub/torchaudio/__init__.py
    PYTHONPATH=/tmp/lf/src:/tmp/lf/stub python bench/llamafactory_check.py OUT_DIR

(``torchaudio`` is only imported by its audio plugin; an empty stub stands in.) Prints one
line per row problem and a summary; exit status 1 when any row is dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace


def check(out_dir: Path) -> int:
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list

    from tpo.curation.llamafactory import DATASET_NAME

    [attr] = get_dataset_list([DATASET_NAME], str(out_dir))
    rows = json.loads((out_dir / attr.dataset_name).read_text())
    convert = get_dataset_converter(attr.formatting, attr, SimpleNamespace(media_dir=str(out_dir)))
    kept = 0
    for row in rows:
        aligned = convert(row)
        media = (aligned["_images"] or []) + (aligned["_videos"] or [])
        placeholders = sum(m["content"].count(tag) for m in aligned["_prompt"]
                           for tag in ("<image>", "<video>"))
        problems = []
        if not aligned["_prompt"] or len(aligned["_response"]) != 2:
            problems.append("dropped by the converter (empty prompt or response)")
        if placeholders != len(media):
            problems.append(f"{placeholders} placeholders for {len(media)} media")
        missing = [m for m in media if not Path(m).is_file()]
        if missing:
            problems.append(f"{len(missing)} media files not found, e.g. {missing[0]}")
        if problems:
            print(f"pair {row.get('pair_id')}: {'; '.join(problems)}")
        else:
            kept += 1
    print(f"LLaMA-Factory's converter ({attr.formatting}, ranking={attr.ranking}): "
          f"{kept} of {len(rows)} rows valid")
    return 0 if kept == len(rows) else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(check(Path(sys.argv[1])))
