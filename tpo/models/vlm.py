"""The video-language model: load it (plus a LoRA adapter), ask it about frames, let it chat.

Any model that ``transformers`` loads with ``AutoModelForImageTextToText`` and
``AutoProcessor`` works - SmolVLM2, Qwen2-VL / Qwen2.5-VL, LLaVA-OneVision - from a hub id or
a local folder (the offline test models of :mod:`tpo.models.tiny` included).

A video reaches the model the way the training export stores it (TRL's multi-image layout):
its sampled frames are the images of ONE user turn, followed by a text that says where the
frames are in time (:func:`time_prompt`, as TPO / LLaVA-Video inference does) and then the
question. So the preference pairs are generated from exactly the inputs DPO later trains on.

Generation is greedy by default, so the same frames and question give the same answer, and
batched (left padding, as decoder-only generation needs).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import get_session
from peft import PeftModel
from PIL import Image
from transformers import (AutoConfig, AutoModelForImageTextToText, AutoProcessor,
                          TextIteratorStreamer)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING

from tpo.errors import TPOError
from tpo.models.prompts import CAPTION_PROMPT, Reply, VideoQuestion, time_prompt
from tpo.media.video import Frames

__all__ = ["CAPTION_PROMPT", "ModelConfig", "ModelLoadError", "VLM", "VideoQuestion",
           "configure_for_frames", "time_prompt"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LOAD_HINT = ("Point TPO_MODEL or --model at a local model folder, or install the offline demo "
             "model with `tpo demo-model data/models/demo-smolvlm`.")
ADAPTER_HINT = ("Point --adapter at a folder saved by training (adapter_config.json and the "
                "adapter weights) for this base model.")
HUB_PROBE_TIMEOUT_S = 3.0  # huggingface_hub retries a dead network for ~25 s; ask once first
# A hub id is "name" or "owner/name"; anything else ("a/b/c", "./x", "~/x", "/x") is a path.
_REPO_ID = re.compile(r"\w[\w.-]*(/\w[\w.-]*)?")


@dataclass
class ModelConfig:
    """Which video-LM to load and how it generates (in the style of TRL's configs)."""

    model: str = field(default="HuggingFaceTB/SmolVLM2-256M-Video-Instruct", metadata={
        "help": "Hub id or local folder of an image-text-to-text model."})
    adapter: str | None = field(default=None, metadata={
        "help": "Folder of a LoRA adapter (PEFT) applied on top of the model."})
    device: str = field(default="auto", metadata={
        "help": "torch device; 'auto' is cuda when available, else cpu."})
    dtype: str = field(default="auto", metadata={
        "help": "float32, bfloat16 or float16; 'auto' is bfloat16 on a CUDA GPU that supports "
                "it, else float32."})
    max_new_tokens: int = field(default=128, metadata={
        "help": "Longest answer, in tokens."})
    batch_size: int = field(default=4, metadata={
        "help": "Questions generated together (one forward pass per token for the batch)."})
    do_sample: bool = field(default=False, metadata={
        "help": "Sample instead of greedy decoding (greedy makes pairs reproducible)."})
    temperature: float = field(default=0.7, metadata={
        "help": "Sampling temperature (only with do_sample); other sampling settings come from "
                "the model's generation_config.json."})
    seed: int = field(default=0, metadata={
        "help": "Seed of torch's global generator, set at every call (reproducible sampling)."})
    max_side: int | None = field(default=None, metadata={
        "help": "Downscale frames so their longer side is at most this many px before the "
                "processor (which resizes again to the model's own size)."})

    def __post_init__(self) -> None:
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"dtype must be auto or one of {', '.join(DTYPES)}, "
                             f"got {self.dtype!r}")
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.max_side is not None and self.max_side < 1:
            raise ValueError(f"max_side must be a positive number of px, got {self.max_side}")


class ModelLoadError(TPOError):
    """A model (or its adapter) cannot be loaded: says which, why, and how to fix it."""

    def __init__(self, model: str, reason: str, hint: str = LOAD_HINT, adapter: str | None = None):
        self.model, self.reason, self.hint, self.adapter = model, reason, hint, adapter
        what = f"model {model!r}" + (f" with adapter {adapter!r}" if adapter else "")
        super().__init__(f"Cannot load {what}: {reason}. {hint}")

    def __reduce__(self):  # picklable across job processes despite the keyword arguments
        return type(self), (self.model, self.reason, self.hint, self.adapter)


def configure_for_frames(processor) -> None:
    """Make `processor` turn each video frame into one tile, as the model's video path does.

    SmolVLM / Idefics3 processors split a large image into up to 4x4 tiles plus a global view:
    1088 tokens a frame for SmolVLM2 at 512 px, so 64 frames (70k tokens) could never fit its
    8k context. Their own video preprocessing keeps only the global view (64 tokens a frame);
    so does this. Training must prepare its processor the same way, so that DPO sees the
    frames exactly as the pairs were generated.
    """
    image_processor = getattr(processor, "image_processor", None)
    if getattr(image_processor, "do_image_splitting", False):
        image_processor.do_image_splitting = False


class VLM:
    """A loaded video-LM with its processor; make one with :meth:`load`."""

    def __init__(self, model: torch.nn.Module, processor, config: ModelConfig, device: str,
                 dtype: torch.dtype):
        self.model, self.processor, self.config = model, processor, config
        self.model_id, self.device, self.dtype = config.model, device, dtype
        # decoder-only generation continues the last position: pad on the left
        processor.tokenizer.padding_side = "left"
        configure_for_frames(processor)

    @classmethod
    def load(cls, config: ModelConfig) -> VLM:
        """Load model, processor and adapter; ModelLoadError when that cannot work.

        A hub id is looked up in the local Hugging Face cache first; the Hub is only asked
        when it is not there and answers at all, so an offline machine fails in seconds.
        """
        device = config.device if config.device != "auto" else (
            "cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(config.model, f"device {device!r} is not available (no CUDA GPU)",
                                 "Use --device auto or cpu.")
        dtype = _resolve_dtype(config.dtype, device)
        model, processor = load_model(config.model, dtype)
        if config.adapter:
            model = _load_adapter(model, config.model, config.adapter)
        return cls(model.to(device).eval(), processor, config, device, dtype)

    def answer(self, items: Sequence[VideoQuestion], *,
               max_new_tokens: int | None = None) -> list[str]:
        """The model's answer to each question, seeing that item's frames; in order."""
        return [reply.text for reply in self.replies(items, max_new_tokens=max_new_tokens)]

    def replies(self, items: Sequence[VideoQuestion], *,
                max_new_tokens: int | None = None) -> list[Reply]:
        """Like :meth:`answer`, with whether each answer was cut at the token limit."""
        requests = []
        for item in items:
            if item.frames.images is None:
                raise ValueError("answer() needs decoded frames (sample with decode=True)")
            content = [{"type": "image"} for _ in item.frames.images]
            content.append({"type": "text", "text": time_prompt(
                item.frames.timestamps, item.duration_s, item.question)})
            requests.append(([{"role": "user", "content": content}], self._images(item.frames)))
        return self._generate(requests, max_new_tokens)

    def stream(self, item: VideoQuestion, *, max_new_tokens: int | None = None) -> Iterator[str]:
        """The answer to one question as it is generated: yields the text so far (growing),
        ending with the same text :meth:`answer` returns for greedy decoding.

        ``generate`` runs in a thread and hands decoded pieces over through transformers'
        ``TextIteratorStreamer``; the caller's loop may stop early (the thread then finishes
        its generation and ends).
        """
        if item.frames.images is None:
            raise ValueError("stream() needs decoded frames (sample with decode=True)")
        content = [{"type": "image"} for _ in item.frames.images]
        content.append({"type": "text", "text": time_prompt(
            item.frames.timestamps, item.duration_s, item.question)})
        conversation = [{"role": "user", "content": content}]
        text = self.processor.apply_chat_template(conversation, add_generation_prompt=True)
        inputs = self.processor(text=[text], images=[self._images(item.frames)],
                                return_tensors="pt").to(self.device, dtype=self.dtype)
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True,
                                        skip_special_tokens=True)
        options = dict(max_new_tokens=max_new_tokens or self.config.max_new_tokens,
                       do_sample=self.config.do_sample, streamer=streamer,
                       pad_token_id=self.processor.tokenizer.pad_token_id)
        if self.config.do_sample:
            options["temperature"] = self.config.temperature
        torch.manual_seed(self.config.seed)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**inputs, **options)
            except BaseException as err:  # re-raised in the caller's thread below
                errors.append(err)
                streamer.on_finalized_text("", stream_end=True)

        thread = threading.Thread(target=work, name="tpo-stream", daemon=True)
        thread.start()
        so_far = ""
        for piece in streamer:
            so_far += piece
            yield _printable(so_far)
        thread.join()
        if errors:
            raise errors[0]

    def caption(self, frames: Frames, duration_s: float, prompt: str | None = None) -> str:
        """A description of what happens in `frames` (of a video `duration_s` long)."""
        return self.answer([VideoQuestion(frames, prompt or CAPTION_PROMPT, duration_s)])[0]

    def chat(self, messages: str | Sequence[Mapping], *, max_new_tokens: int | None = None) -> str:
        """A text-only reply: to a user prompt, or to chat messages ({"role", "content"})."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        # Content as a list of parts: SmolVLM's template renders string content as nothing.
        turns = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]
                  if isinstance(m["content"], str) else m["content"]} for m in messages]
        return self._generate([(turns, None)], max_new_tokens)[0].text

    def close(self) -> None:
        """Drop the model so its (GPU) memory can be reused; the VLM is unusable afterwards."""
        self.model = self.processor = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self) -> VLM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _images(self, frames: Frames) -> list[Image.Image]:
        images = [Image.fromarray(image) for image in frames.images]
        if self.config.max_side:
            for image in images:  # in place, downscale only, aspect kept
                image.thumbnail((self.config.max_side, self.config.max_side))
        return images

    def _generate(self, requests: list[tuple[list[dict], list[Image.Image] | None]],
                  max_new_tokens: int | None) -> list[Reply]:
        """Generate for (conversation, images or None) requests, batch_size at a time.

        All requests of a call have images or none does (the processor takes one or the other).
        """
        config = self.config
        options = dict(max_new_tokens=max_new_tokens or config.max_new_tokens,
                       do_sample=config.do_sample,
                       pad_token_id=self.processor.tokenizer.pad_token_id)
        if config.do_sample:
            options["temperature"] = config.temperature
        torch.manual_seed(config.seed)
        replies = []
        for start in range(0, len(requests), config.batch_size):
            chunk = requests[start:start + config.batch_size]
            texts = [self.processor.apply_chat_template(conversation, add_generation_prompt=True)
                     for conversation, _ in chunk]
            images = [request_images for _, request_images in chunk]
            inputs = self.processor(text=texts, images=images if images[0] else None,
                                    padding=True, return_tensors="pt")
            inputs = inputs.to(self.device, dtype=self.dtype)  # dtype: float tensors only
            with torch.inference_mode():
                output = self.model.generate(**inputs, **options)
            new_tokens = output[:, inputs["input_ids"].shape[1]:]  # (batch, <= max_new_tokens)
            texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
            # A reply that never produced an end-of-sequence token stopped at the limit.
            ended = torch.isin(new_tokens, self._eos_ids()).any(dim=1).tolist()
            replies += [Reply(_printable(text), truncated=not done) for text, done in zip(texts, ended)]
        return replies

    def _eos_ids(self) -> torch.Tensor:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.processor.tokenizer.eos_token_id
        ids = eos if isinstance(eos, (list, tuple)) else [eos]
        return torch.tensor([i for i in ids if i is not None], device=self.device)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")  # U+FFFD: bytes that were not UTF-8


def _printable(text: str) -> str:
    """Stripped text without control characters (a random model emits them; JSON, SQLite
    and the browser accept them, but a person cannot read them)."""
    return _CONTROL.sub("", text).strip()


def _resolve_dtype(name: str, device: str) -> torch.dtype:
    if name != "auto":
        return DTYPES[name]
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32


def load_model(model_id: str, dtype: torch.dtype):
    """(model, processor) from a local folder, the hub cache, or the Hub - in that order."""
    path = Path(model_id).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(model_id, f"{path} is not a saved model (no config.json in it)")
        try:
            return _from_pretrained(model_id, str(path), dtype, local_only=True)
        except (OSError, ValueError) as err:
            reason = f"its files cannot be read ({_first_line(err)})"
            raise ModelLoadError(model_id, reason) from err
    if not _REPO_ID.fullmatch(model_id):
        raise ModelLoadError(model_id, "no such folder")
    try:
        return _from_pretrained(model_id, model_id, dtype, local_only=True)
    except OSError:  # not (completely) in the hub cache
        pass
    offline = _hub_unreachable()
    if offline:
        raise ModelLoadError(model_id, "there is no such folder, it is not in the local Hugging "
                                       f"Face cache, and {offline}")
    try:
        return _from_pretrained(model_id, model_id, dtype, local_only=False)
    except (OSError, ValueError) as err:
        raise ModelLoadError(model_id, f"the Hub does not give it ({_first_line(err)})") from err


def _from_pretrained(model_id: str, source: str, dtype: torch.dtype, local_only: bool):
    config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    if type(config) not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING:
        raise ModelLoadError(model_id, f"it is a {config.model_type!r} model, not an "
                                       "image-text-to-text (vision-language) model")
    model = AutoModelForImageTextToText.from_pretrained(
        source, config=config, dtype=dtype, local_files_only=local_only)
    return model, AutoProcessor.from_pretrained(source, local_files_only=local_only)


def _hub_unreachable() -> str | None:
    """Why the Hub cannot be asked (offline mode, no connection), or None when it answers."""
    if hub_constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE)"
    try:
        get_session().head(hub_constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as err:  # any transport error of huggingface_hub's HTTP client
        return f"{hub_constants.ENDPOINT} cannot be reached ({_first_line(err)})"
    return None


def _load_adapter(model: torch.nn.Module, model_id: str, adapter: str) -> PeftModel:
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        reason = (f"the adapter folder {path} has no adapter_config.json" if path.exists()
                  else "the adapter folder does not exist")
        raise ModelLoadError(model_id, reason, ADAPTER_HINT, adapter)
    try:
        return PeftModel.from_pretrained(model, str(path))
    except (OSError, ValueError, RuntimeError, KeyError) as err:  # e.g. shapes of another base
        raise ModelLoadError(model_id, f"the adapter does not fit ({_first_line(err)})",
                             ADAPTER_HINT, adapter) from err


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
