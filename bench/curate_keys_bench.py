"""Curate tab: a key press to the next pair visible, in a real browser.

    python bench/curate_keys_bench.py [--presses 20] [--key a] [--data DIR]

Starts the app as a user does (``python app.py``, demo library at scale 0.1, data in a
temporary folder unless ``--data``), adds ``--presses + 1`` pending pairs on one demo video,
opens the Curate tab in headless Chromium at 1440×900 and loads that queue. Then, ``--presses``
times: the page itself presses the key (a ``keydown`` on the page) and counts, with
``performance.now()``, the milliseconds until ``#curate-question`` shows the next pair's
question and a frame has been painted, and until the server's answer for the pair is shown
(its number in the message line). Between presses it waits for the server's view and pauses,
so every press starts from a settled page. Prints each time, p50 and p90 (the issue's
target: key press to next pair visible, p50 ≤ 300 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere

from tpo.store import Store  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Runs in the page: press the key, then poll every animation frame until the question
# changed, then until the server's answer names the pair; returns the milliseconds from the
# key press to the first frame showing the next pair, and to the server's confirmation.
PRESS = """async ([key, before, answer]) => {
  const text = (sel) => (document.querySelector(sel) || {}).textContent || '';
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  const t0 = performance.now();
  document.body.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
  while (text('#curate-question') === before) {
    await frame();
    if (performance.now() - t0 > 20000) return [-1, -1];
  }
  await frame();  // painted
  const visible = performance.now() - t0;
  while (!text('#curate-message').includes(answer)) {
    await frame();
    if (performance.now() - t0 > 20000) return [visible, -1];
  }
  return [visible, performance.now() - t0];
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TPO_DATA_DIR": str(data), "TPO_DEMO_SCALE": "0.1", "TPO_USER": "bench",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env,
                            stdout=open(data / "app.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            sys.exit(f"the app exited:\n{(data / 'app.log').read_text()}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit("the app did not answer within 300 s")
            time.sleep(0.5)


def seed(data: Path, n: int, tag: str) -> list[int]:
    store = Store(data / "tpo.db")
    video = store.list_videos(search="corner_watch")[0]
    rows = [{"kind": "localized", "strategy": "irrelevant", "question": f"{tag} question {i}?",
             "chosen": f"{tag} chosen {i}", "rejected": f"{tag} rejected {i}",
             "segment_start": 2.0, "segment_end": 5.0,
             "chosen_timestamps": [2.0, 3.0, 4.0], "rejected_timestamps": [0.5, 6.0, 9.0],
             "status": "pending", "filter_verdict": "kept"} for i in range(n)]
    return store.save_generation(video["id"], f"bench-{tag}-{time.time_ns()}", rows,
                                 params={}, seconds=0)


def measure(url: str, data: Path, presses: int, key: str) -> list[float]:
    from playwright.sync_api import expect, sync_playwright

    tag = f"bench{int(time.time())}"
    ids = seed(data, presses + 1, tag)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        page.get_by_role("tab", name="Curate").click()
        page.locator("#curate-search textarea, #curate-search input").first.fill(f"{tag} question")
        page.locator("#curate-load").click()
        expect(page.locator("#curate-question")).to_have_text(f"{tag} question 0?",
                                                               timeout=60_000)
        times, confirmed = [], []
        for i in range(presses):
            before = page.locator("#curate-question").inner_text()
            visible, answered = page.evaluate(PRESS, [key, before, f"Pair #{ids[i]}:"])
            if visible < 0 or answered < 0:
                sys.exit(f"press {i + 1}: the next pair or the server's answer never showed")
            times.append(visible)
            confirmed.append(answered)
            # settled: the server's view of the next pair, then a pause, before the next press
            expect(page.locator("#curate-question")).to_have_text(f"{tag} question {i + 1}?",
                                                                   timeout=60_000)
            page.wait_for_timeout(300)
        browser.close()
    return times, confirmed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--key", default="a", help="a (accept) or r (reject)")
    parser.add_argument("--data", type=Path,
                        help="the app's data folder (default: a new temporary one)")
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="curate-bench-"))
    data.mkdir(parents=True, exist_ok=True)
    proc, url = start_app(data)
    try:
        times, confirmed = measure(url, data, args.presses, args.key)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for label, values in (("next pair visible", times), ("server's answer shown", confirmed)):
        ordered = sorted(values)
        print(f"key press → {label} (ms): " + " ".join(f"{t:.0f}" for t in values))
        print(f"  p50 {statistics.median(values):.0f} ms · "
              f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:.0f} ms · min {ordered[0]:.0f} · "
              f"max {ordered[-1]:.0f} · n {len(values)}")


if __name__ == "__main__":
    main()
