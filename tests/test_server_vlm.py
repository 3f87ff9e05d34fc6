"""Generation with the video-LM behind a real OpenAI-compatible multimodal server
(``transformers serve`` of the project's tiny SmolVLM, started by the test): frames go out as
JPEG image parts, questions of one call are in flight together, pairs are stored as with an
in-process model; a server that is down is one clear message naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from chat_server import closed_port_url
from click.testing import CliRunner
from media import make_video
from processes import transformers_serve

from tpo.cli import cli
from tpo.generation.generate import GenerationRequest, run
from tpo.generation.pairs import GenerationConfig
from tpo.media.library import ingest
from tpo.media.video import Frames
from tpo.models.prompts import VideoQuestion
from tpo.models.server_vlm import ServerVLM, is_server, open_server
from tpo.models.textlm import TextModelError

SMALL = GenerationConfig(localized=1, comprehensive=1, segment_min_s=3, segment_max_s=5,
                         segment_frames=4, dense=8, sparse=2, caption_frames=2, max_side=64,
                         questions="model", max_new_tokens=8)


@pytest.fixture(scope="module")
def server(tiny_smolvlm_dir):
    with transformers_serve(tiny_smolvlm_dir) as url:
        yield url


def _question(n: int, text: str = "What happens?") -> VideoQuestion:
    images = np.random.default_rng(n).integers(0, 255, (n, 48, 64, 3), dtype=np.uint8)
    return VideoQuestion(Frames(indices=list(range(n)), timestamps=[k + 0.5 for k in range(n)],
                                images=list(images)), text, float(n))


def test_is_server_tells_urls_from_models():
    assert is_server("http://localhost:8000/v1") and is_server("https://h/v1#m")
    assert not is_server("HuggingFaceTB/SmolVLM2-256M-Video-Instruct")
    assert not is_server("data/models/demo") and not is_server(None)


def test_frames_go_out_as_image_parts_and_replies_come_back_in_order(server):
    with open_server(f"{server}/v1", max_new_tokens=4) as vlm:
        content = vlm.content(_question(3, "Which colour?"))
        assert [p["type"] for p in content] == ["image_url"] * 3 + ["text"]
        assert content[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert content[-1]["text"].endswith("Which colour?")
        assert "located at 0.5s, 1.5s, 2.5s" in content[-1]["text"]
        replies = vlm.replies([_question(n) for n in (1, 2, 3, 4)])
        assert len(replies) == 4 and all(isinstance(r.text, str) for r in replies)
        # The tiny model never stops by itself: 4 tokens are the limit, and the server says so.
        assert all(r.truncated for r in replies)
        assert vlm.model_id.startswith(server)


def test_generation_through_the_server_stores_pairs(server, store, tmp_path):
    ingest(store, [make_video(tmp_path / "clip.mp4", duration_s=12, fps=4, size=(64, 48))])
    request = GenerationRequest(model=server, writer="self", config=SMALL)
    report = run(store, request)
    assert report.failed == {} and sum(report.generated.values()) == 2
    pairs = store.list_pairs()
    assert {p["generator"]["model"] for p in pairs} == {ServerVLM(server).model_id}
    # The CLI's --server is the same backend; the same settings are "already generated".
    result = CliRunner().invoke(cli, [
        "--db", str(store.path), "generate", "--all", "--server", server, "--writer", "self",
        "--localized", "1", "--comprehensive", "1", "--dense", "8", "--sparse", "2",
        "--questions", "model", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["generated"]  # other CLI defaults: a new run


def test_a_server_that_is_down_is_one_clear_message(store, tmp_path):
    ingest(store, [make_video(tmp_path / "clip.mp4", duration_s=12, fps=4, size=(64, 48))])
    url = closed_port_url()
    with pytest.raises(TextModelError, match="cannot connect to .*is the server running"):
        run(store, GenerationRequest(model=url, writer="self", config=SMALL))
    result = CliRunner().invoke(cli, ["--db", str(store.path), "generate", "--all",
                                      "--server", url, "--writer", "self"])
    assert result.exit_code == 1 and url in result.output and "Traceback" not in result.output
    assert store.list_pairs() == []


def test_eval_asks_a_model_behind_the_server(server, store, tmp_path):
    """`tpo eval --model URL`: the needle suite's questions go to the server."""
    result = CliRunner().invoke(cli, [
        "--db", str(store.path), "eval", "--model", f"{server}/v1", "--suite", "needle",
        "--needle-lengths", "10", "--needle-depths", "0.5", "--frames", "4",
        "--max-new-tokens", "4", "--json"])
    assert result.exit_code == 0, result.output
    [row] = store.list_evaluations()
    assert row["suite"] == "needle" and row["n_items"] == 1
