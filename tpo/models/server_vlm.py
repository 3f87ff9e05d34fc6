"""A video-LM behind an OpenAI-compatible multimodal server, in place of a model loaded here.

For a 7B model, the paper's 10k pairs, or Video-MME's 2,700 questions, a serving engine
(``vllm serve``, SGLang, ``transformers serve``) batches far better than ``generate()`` in
this process. :class:`ServerVLM` does what :class:`tpo.models.vlm.VLM` does for generation
(:class:`tpo.generation.pairs.Model`): each question goes out as one chat completion whose
user turn holds the frames as JPEG ``image_url`` parts (data URLs, in time order) and then
the same time prompt text the in-process model gets (:func:`tpo.models.prompts.time_prompt`).
The questions of one call are sent concurrently (``concurrency`` requests at once), so the
server's continuous batching sees many at a time.

The server is asked for ``/v1/models`` when the model opens, so one that is down fails in
seconds with a message naming it (:class:`tpo.models.textlm.TextModelError`), before any video
is touched. Decoding is greedy (temperature 0), like the in-process default.
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from PIL import Image

from tpo.models.prompts import Reply, VideoQuestion, time_prompt
from tpo.models.textlm import DEFAULT_MAX_NEW_TOKENS, ServerTextLM

__all__ = ["ServerVLM", "is_server", "open_server"]

JPEG_QUALITY = 90
CONCURRENCY = 8  # requests in flight at once: enough for a server's batcher to fill a batch


def is_server(spec: str | None) -> bool:
    """Whether a model spec names a server (``http://`` or ``https://``) rather than weights."""
    return bool(spec) and spec.strip().lower().startswith(("http://", "https://"))


class ServerVLM(ServerTextLM):
    """``ServerVLM(url[, model])``: generation's video-LM, answered by a server.

    ``url`` may end in ``/v1``; ``model`` picks one of the server's models (default: the
    first it lists). ``max_side`` (px) downscales frames before they are sent.
    """

    def __init__(self, url: str, model: str | None = None, *,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, concurrency: int = CONCURRENCY,
                 max_side: int | None = None, api_key: str | None = None):
        super().__init__(url, model, role="video-LM server", max_new_tokens=max_new_tokens,
                         api_key=api_key)
        self.concurrency, self.max_side = max(1, concurrency), max_side
        self.model_id = self.name  # what pairs record and the run key hashes

    def replies(self, items: Sequence[VideoQuestion], *,
                max_new_tokens: int | None = None) -> list[Reply]:
        """One reply per question, in order; the questions are in flight together."""
        def one(item: VideoQuestion) -> Reply:
            text, cut = self.complete(self.content(item), max_tokens=max_new_tokens)
            return Reply(text, cut)

        if len(items) <= 1:
            return [one(item) for item in items]
        with ThreadPoolExecutor(min(self.concurrency, len(items))) as pool:
            return list(pool.map(one, items))

    def answer(self, items: Sequence[VideoQuestion], **kwargs) -> list[str]:
        return [reply.text for reply in self.replies(items, **kwargs)]

    def content(self, item: VideoQuestion) -> list[dict]:
        """The user turn: every frame as a JPEG data URL, then the time prompt and question."""
        if item.frames.images is None:
            raise ValueError("a server needs decoded frames (sample with decode=True)")
        parts = [{"type": "image_url", "image_url": {"url": self._data_url(image)}}
                 for image in item.frames.images]
        parts.append({"type": "text", "text": time_prompt(item.frames.timestamps,
                                                          item.duration_s, item.question)})
        return parts

    def _data_url(self, image) -> str:
        picture = Image.fromarray(image)
        if self.max_side and max(picture.size) > self.max_side:
            picture.thumbnail((self.max_side, self.max_side))
        buf = io.BytesIO()
        picture.save(buf, format="JPEG", quality=JPEG_QUALITY)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def open_server(spec: str, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> ServerVLM:
    """``URL`` or ``URL#model`` (the form ``--writer`` takes) as a :class:`ServerVLM`."""
    url, _, model = spec.strip().partition("#")
    return ServerVLM(url, model or None, max_new_tokens=max_new_tokens)
