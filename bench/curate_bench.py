"""Curating at scale: the review queue, a reviewer's next pair and review actions, with
100k pairs.

    python bench/curate_bench.py [--pairs 100000] [--data DIR] [--clients 20] [--seconds 30]
                                 [--client http|gradio] [--no-timers]
                                 [--skip-http] [--skip-browser]

Builds a library (one real rendered video behind --videos library entries, the pairs spread
over them: 80 % pending, 10 % filtered for four reasons, 5 % accepted, 5 % rejected; a
team of four reviewers with 10 % of the pairs overlapped) under --data, reused by later runs
when it already holds the pairs. Then measures, printing the median of several runs and,
where the app had one, the old path beside it:

* server side, in process: opening the queue (new: its count, the first page of ids, the
  counters, the filtered reasons and the first pair; old: ``list_pairs`` decoding every
  row to list ids, counters by a table scan), a search (FTS5 vs LIKE), the next pair (a
  keyset page of one, the pair and its video), a reviewer's next pair from their share,
  agreement, progress, one review action and its undo;
* the real app over HTTP (``ui.server.create_server`` under uvicorn in a subprocess, on a
  fresh copy of the library; each client a browser session speaking Gradio's queue protocol,
  with its own reviewer name and video, its page's timers polling meanwhile): load the
  queue, then accept pairs - one client, then --clients at once for --seconds; latency
  percentiles, actions/s, errors, actions lost (answered but not in the audit trail), and
  the CPU per action of the app and of the clients;
* a key press in the browser (Playwright, Debian's Chromium, 1440x900): "a" on the Curate
  tab with the whole pending queue loaded, to the next pair painted and to the server's
  answer shown, timed in the page (:func:`browser_key_press`; skipped when the page has no
  keyboard review or Chromium is missing).

Targets at 100k pairs (issue 13): queue open <= 300 ms server side; action round trip p95
<= 150 ms with one client; 20 concurrent: p95 <= 1 s, >= 20 actions/s, 0 errors, 0 lost;
key press to next pair p50 <= 300 ms. Nothing is asserted: numbers are printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tpo.config import Settings  # noqa: E402
from tpo.curation import teams  # noqa: E402
from tpo.curation.review import review, undo  # noqa: E402
from tpo.media.library import ingest  # noqa: E402
from tpo.media.synth import needle_spec, render_video  # noqa: E402
from tpo.store import Store  # noqa: E402

PAGE = 50  # ids of a queue page
REPEAT = 7  # runs per server-side measurement (the median is printed)
REVIEWERS = ("ana", "bo", "cy", "dee")
REASONS = ("truncated: the chosen answer stopped at the token limit",
           "near-identical: chosen and rejected are 93% alike",
           "refusal: the rejected answer declines to answer",
           "judge: the chosen answer is not supported by the frames")
STARTUP_TIMEOUT_S = 120
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


# --------------------------------------------------------------------------------------------
# The library


def build_library(data: Path, n_pairs: int, n_videos: int) -> Store:
    """A store under ``data`` holding ``n_pairs`` pairs (built once, reused after)."""
    settings = Settings(data_dir=data, user="bench")
    store = Store(settings.db_path)
    have = store.queue_count()
    if have >= n_pairs:
        print(f"library: reusing {data} ({have} pairs)", flush=True)
        return store
    if have:
        raise SystemExit(f"{data} holds {have} pairs, fewer than --pairs {n_pairs}: "
                         "use another --data folder")
    started = time.perf_counter()
    video_dir = data / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    base = video_dir / "base.mp4"
    render_video(needle_spec(20.0, 0.5), base)
    first = ingest(store, [base], user="bench").added[0]
    row = store.get_video(first)
    videos = [first]
    for v in range(1, n_videos):  # more library entries of the same frames, each its own path
        link = video_dir / f"v{v:04d}.mp4"
        if not link.exists():
            link.symlink_to(base.name)
        videos.append(store.add_video({**{k: row[k] for k in (
            "duration_s", "fps", "n_frames", "width", "height", "rotation", "codec", "backend",
            "status", "size_bytes")}, "path": str(link), "name": link.name,
            "sha256": f"{v:064x}", "added_by": "bench"}))
    rng = random.Random(0)
    per_video = -(-n_pairs // n_videos)
    made = 0
    for v, video_id in enumerate(videos):
        rows = []
        for i in range(min(per_video, n_pairs - made)):
            k = made + i
            draw = rng.random()
            status = ("pending" if draw < 0.8 else "filtered" if draw < 0.9 else
                      "accepted" if draw < 0.95 else "rejected")
            start = rng.uniform(0, 15)
            rows.append({
                "kind": "localized" if k % 3 else "comprehensive",
                "strategy": ("irrelevant", "incomplete", "dense-sparse")[k % 3],
                "question": f"What does the {rng.choice(('red', 'blue', 'green'))} "
                            f"{rng.choice(('circle', 'square', 'star'))} do near {start:.0f} s "
                            f"in clip {k}?",
                "chosen": f"It moves {rng.choice(('left', 'right', 'up'))} and stops (#{k}).",
                "rejected": f"Nothing happens in clip {k}.",
                "segment_start": start, "segment_end": start + 4.0,
                "chosen_timestamps": [start + t for t in (0.5, 1.5, 2.5, 3.5)],
                "rejected_timestamps": [1.0, 7.0, 13.0, 19.0],
                "status": status, "filter_verdict": "dropped" if status == "filtered" else "kept",
                "filter_reason": REASONS[k % 4] if status == "filtered" else None,
                "generator": {"model": "bench", "config": {"max_new_tokens": 128}}})
        store.save_generation(video_id, "bench", rows, params={}, seconds=0)
        made += len(rows)
        if made >= n_pairs:
            break
        if v and v % 50 == 0:
            print(f"  {made} pairs ...", flush=True)
    # A team: the pending pairs split by video among four reviewers, 10 % to two of them.
    teams.assign(store, REVIEWERS, by="video", overlap=2, overlap_fraction=0.1, user="bench")
    print(f"library: {made} pairs on {len(videos)} videos built in "
          f"{time.perf_counter() - started:.0f} s ({settings.db_path})", flush=True)
    return store


def seed_decisions(store: Store, n: int = 1000) -> None:
    """Both reviewers of ``n`` overlap pairs decide them (about 85 % alike), so agreement has
    data; done once per library."""
    if store.shared_decisions():
        return
    rng = random.Random(1)
    started = time.perf_counter()
    done = 0
    for pair_id in store.queue_ids(status="pending"):
        names = store.assignees(pair_id)
        if len(names) < 2:
            continue
        first = rng.choice(("accept", "reject"))
        other = first if rng.random() < 0.85 else {"accept": "reject", "reject": "accept"}[first]
        review(store, pair_id, first, user=names[0])
        review(store, pair_id, other, user=names[1])
        done += 1
        if done == n:
            break
    print(f"decisions: {done} overlap pairs decided by both reviewers in "
          f"{time.perf_counter() - started:.0f} s", flush=True)


# --------------------------------------------------------------------------------------------
# Server side


def timed(fn: Callable[[], Any], repeat: int = REPEAT) -> float:
    """Median wall time of ``fn`` in ms (one warm-up run first)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def old_counts(store: Store) -> dict:
    """The counters as the app computed them before the indexes: a scan of the table."""
    out: dict = {}
    for kind, status, n in store.db.execute(  # the old plan, forced: no index
            "SELECT kind, status, COUNT(*) FROM pairs NOT INDEXED GROUP BY kind, status"):
        out.setdefault(kind, {})[status] = n
    return out


def old_search(store: Store, text: str) -> list[int]:
    """The old search: LIKE over the six text columns, decoding every row found."""
    pattern = f"%{text}%"
    columns = ("question", "chosen", "rejected", "edited_question", "edited_chosen",
               "edited_rejected")
    rows = store.db.execute(
        "SELECT * FROM pairs WHERE " + " OR ".join(f"{c} LIKE ?" for c in columns)
        + " ORDER BY id", [pattern] * len(columns)).fetchall()
    return [r[0] for r in rows]


def server_side(store: Store) -> list[tuple[str, float, float | None]]:
    """(what, new ms, old ms or None) per measurement."""
    rows = []
    first_id = store.queue_ids(status="pending", limit=1)[0]

    def open_new():
        n = store.queue_count(status="pending")
        ids = store.queue_ids(status="pending", limit=PAGE)
        store.pair_counts()
        store.filtered_reasons()
        store.get_pair(ids[0])
        return n

    def open_old():
        ids = [p["id"] for p in store.list_pairs(status="pending", order="pending-first")]
        old_counts(store)
        store.get_pair(ids[0])

    rows.append(("queue open (pending)", timed(open_new), timed(open_old, repeat=3)))
    rows.append(("  all pending ids (no decode)",
                 timed(lambda: store.queue_ids(status="pending")), None))
    rows.append(("counters", timed(store.pair_counts), timed(lambda: old_counts(store))))
    rows.append(("filtered per reason", timed(store.filtered_reasons), None))
    rows.append(("search 'clip 4242'", timed(lambda: store.queue_ids(search="clip 4242")),
                 timed(lambda: old_search(store, "clip 4242"), repeat=3)))

    def next_page():
        (nxt,) = store.queue_ids(status="pending", after=first_id, limit=1)
        pair = store.get_pair(nxt)
        store.get_video(pair["video_id"])

    rows.append(("next pair (keyset page of 1 + pair + video)", timed(next_page), None))
    try:
        from ui.curate import View  # the app's render of one pair, where it has one

        settings = Settings(data_dir=store.path.parent, user="bench")
        rows.append(("  + the app's render of it (ui.curate.View.of)",
                     timed(lambda: View.of(store, settings, first_id, "1 of n")), None))
    except (ImportError, AttributeError, TypeError) as err:
        print(f"(no ui.curate.View.of render measured: {err})")
    rows.append(("reviewer's next pair (teams.next_for)",
                 timed(lambda: teams.next_for(store, "bo", after=first_id)), None))
    rows.append(("reviewer's share count", timed(lambda: store.queue_count(reviewer="bo")),
                 None))
    rows.append(("agreement (all reviewers)", timed(lambda: teams.agreement(store), repeat=3),
                 None))
    rows.append(("progress (all reviewers)", timed(lambda: teams.progress(store), repeat=3),
                 None))
    target = store.queue_ids(status="pending", after=first_id, limit=200)

    def action():
        pair_id = target.pop()
        review(store, pair_id, "accept", user="bench")
        undo(store, pair_id, user="bench")

    rows.append(("accept + undo (two audited actions)", timed(action, repeat=REPEAT), None))
    return rows


# --------------------------------------------------------------------------------------------
# The real app over HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data: Path, port: int) -> None:
    """Run the real app (``--serve``): what ``tpo serve`` runs, without the demo library, on
    the copy of the library in ``data`` (thumbnails cached in the library's folder)."""
    import uvicorn

    from ui.server import create_server

    settings = Settings(data_dir=data, user="bench", demo_on_start=False,
                        thumb_dir=data.parent / "thumbs")
    uvicorn.run(create_server(Store(settings.db_path), settings), host="127.0.0.1", port=port,
                log_level="warning")


def app_copy(store: Store, data: Path) -> Store:
    """A fresh copy of the library under ``data/app-run`` for the app to review in: every
    run's reviewers start from the same pending queues, whatever earlier runs accepted."""
    return Store(store.copy_to(data / "app-run" / "tpo.db"))


def start_app(data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(data / "bench-app.log", "w")
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--data", str(data),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app stopped: {(data / 'bench-app.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start in time")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # uvicorn waits for open connections; none matter now
        proc.kill()
        proc.wait()


class CurateSession:
    """One browser session of the Curate tab: the events of the Load and Accept buttons,
    found by their elem_id in the app's config, with the other inputs at their page defaults
    (the reviewer's name, the status "pending" and, unless ``video`` is None, the video).

    ``client="http"`` (the bench's default) speaks Gradio's queue protocol as the browser
    does, over two kept-alive connections: POST ``gradio_api/queue/join`` with the inputs
    (states as null: the server keeps them per session), then read the session's event
    stream (``gradio_api/queue/data``) until it closes. ``client="gradio"`` calls through
    ``gradio_client.Client`` instead; it costs ~110 ms of CPU per call (a new ``httpx``
    client per request and a thread polling for cancellation), which on a 2-core machine
    shared with the server measures the client rather than the app."""

    def __init__(self, url: str, user: str, video: str | None, client: str = "http"):
        self.url, self.user, self.video = url, user, video
        with urllib.request.urlopen(urllib.parse.urljoin(url, "config"), timeout=60) as r:
            config = json.load(r)
        self._config = config
        self.components = {c["id"]: c for c in config["components"]}
        by_elem = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}
        self.load = self._event(config, by_elem.get("curate-load"))
        self.accept = self._event(config, by_elem.get("curate-accept"))
        outputs = self.accept["outputs"]
        if client == "gradio":
            from gradio_client import Client

            self._client = Client(url, verbose=False, download_files=False)
            self._call = self._call_gradio_client
            # gradio_client returns the outputs without the states.
            outputs = [o for o in outputs if self.components[o]["type"] != "state"]
        else:
            parts = urllib.parse.urlsplit(url)
            self._root = parts.path.rstrip("/") + "/gradio_api/"
            self._session = "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=11))
            self._posts = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
            self._stream = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
            self._call = self._call_http
        self.message_at = outputs.index(by_elem["curate-message"])

    @staticmethod
    def _event(config: dict, component_id: int | None) -> dict:
        for i, dep in enumerate(config["dependencies"]):
            targets = [t[0] if isinstance(t, (list, tuple)) else t for t in dep.get("targets", [])]
            if component_id is not None and component_id in targets:
                return {**dep, "index": dep.get("id", i), "trigger_id": component_id}
        raise LookupError(f"no event on component {component_id}")

    def _value(self, cid: int) -> Any:
        comp = self.components[cid]
        props = comp.get("props", {})
        elem, label = props.get("elem_id"), (props.get("label") or "").lower()
        if elem == "curate-user" or "your name" in label:
            return self.user
        if label == "status":
            return "pending"
        if label == "video" and self.video is not None:
            return self.video
        return props.get("value")

    def _call_gradio_client(self, dep: dict) -> list:
        args = [self._value(c) for c in dep["inputs"]
                if self.components[c]["type"] != "state"]  # kept by the server per session
        return list(self._client.predict(*args, fn_index=dep["index"]))

    @staticmethod
    def _request(conn: http.client.HTTPConnection, method: str, path: str, body: str | None = None,
                 headers: dict | None = None) -> http.client.HTTPResponse:
        for attempt in (1, 2):
            try:
                conn.request(method, path, body, headers or {})
                return conn.getresponse()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The server closed the kept-alive connection while it was idle (uvicorn
                # after 5 s): reconnect once, as a browser does.
                conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _call_http(self, dep: dict) -> list:
        data = [None if self.components[c]["type"] == "state" else self._value(c)
                for c in dep["inputs"]]
        body = json.dumps({"data": data, "fn_index": dep["index"], "event_data": None,
                           "trigger_id": dep["trigger_id"], "session_hash": self._session})
        answer = self._request(self._posts, "POST", self._root + "queue/join", body,
                               {"Content-Type": "application/json"})
        joined = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"queue/join: HTTP {answer.status}: {joined[:200]!r}")
        event_id = json.loads(joined)["event_id"]
        stream = self._request(self._stream, "GET",
                               f"{self._root}queue/data?session_hash={self._session}")
        if stream.status != 200:
            raise RuntimeError(f"queue/data: HTTP {stream.status}: {stream.read()[:200]!r}")
        output = None
        for line in stream:  # server-sent events: "data: {json}" lines, blank lines between
            if not line.startswith(b"data:"):
                continue
            message = json.loads(line[5:])
            if message["msg"] == "close_stream":
                break
            if message["msg"] == "process_completed" and message.get("event_id") == event_id:
                if not message.get("success"):
                    raise RuntimeError(f"error answer: {message.get('output')}")
                output = message["output"]["data"]
        stream.read()  # to the end of the chunked body, so the connection is kept alive
        if output is None:
            raise RuntimeError("the event stream closed without the answer")
        return output

    def open(self) -> None:
        self._call(self.load)

    def close(self) -> None:
        if hasattr(self, "_client"):
            self._client.close()
        else:
            self._posts.close()
            self._stream.close()

    def act(self) -> str:
        """Accept the pair shown; the answer's message (Markdown)."""
        return str(self._call(self.accept)[self.message_at])

    def timers(self) -> list[tuple[float, dict]]:
        """The page's active timers: (interval in s, the tick event), as a browser runs
        them on every open page (the header, the job panels' polls)."""
        out = []
        for i, dep in enumerate(self._config["dependencies"]):
            for target in dep.get("targets", []):
                if isinstance(target, (list, tuple)) and target[1] == "tick":
                    props = self.components[target[0]].get("props", {})
                    if props.get("active", True) and props.get("value"):
                        out.append((float(props["value"]),
                                    {**dep, "index": dep.get("id", i), "trigger_id": target[0]}))
        return out

    def tick(self, event: dict) -> None:
        self._call(event)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of process ``pid`` so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")  # not Linux: the per-action CPU shows as nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_round_trips(url: str, store: Store, clients: int, seconds: float,
                     videos: list[dict], server_pid: int, client: str = "http",
                     timers: bool = True) -> list[str]:
    """Accepts through the app at ``url``: one client, then ``clients`` at once. Each line
    also gives the CPU per action of the app's process and of this one (the clients): the
    clients share the machine's cores with the app. With ``timers``, every client's page
    also runs its timers meanwhile (the header's refresh, each job panel's poll), as an
    open browser tab does, from a session of its own."""
    lines = []

    def run(n_clients: int, duration: float, tag: str) -> None:
        users = [f"{tag}{i:02d}" for i in range(n_clients)]
        # One reviewer alone reviews the whole pending queue (one video's ~400 pairs last
        # it ~8 s); a team splits it by video, one each, as reviewers would.
        names = ([None] if n_clients == 1 else
                 [f"#{v['id']} {v['name']}" for v in videos[:n_clients]])
        sessions = [CurateSession(url, u, name, client=client) for u, name in zip(users, names)]
        for s in sessions:
            s.open()
        # Actions these users made before (a reused library keeps earlier runs' audit rows).
        before = store.review_times()
        done_before = sum(len(before.get(u, [])) for u in users)
        latencies: list[float] = []
        errors: list[str] = []
        ok = [0]
        lock = threading.Lock()
        pollers = ([CurateSession(url, s.user, s.video, client=client) for s in sessions]
                   if timers else [])
        ticks: list[float] = []
        tick_errors: list[str] = []
        deadline = time.monotonic() + duration
        cpu_app, cpu_clients = cpu_seconds(server_pid), time.process_time()

        def poll(page: CurateSession) -> None:
            # Each timer first fires at a random point of its interval, then every interval.
            due = [(time.monotonic() + random.uniform(0, every), every, event)
                   for every, event in page.timers()]
            while due:
                due.sort(key=lambda d: d[0])
                at, every, event = due[0]
                if at >= deadline:
                    return
                time.sleep(max(0.0, at - time.monotonic()))
                start = time.perf_counter()
                try:
                    page.tick(event)
                except Exception as err:
                    with lock:
                        tick_errors.append(str(err)[:200])
                else:
                    with lock:
                        ticks.append((time.perf_counter() - start) * 1000)
                due[0] = (at + every, every, event)

        def worker(session: CurateSession) -> None:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    session.act()
                except Exception as err:  # an error answer of the app, or a dropped request
                    with lock:
                        errors.append(str(err)[:200])
                    continue
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)
                    ok[0] += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(s,)) for s in sessions]
        threads += [threading.Thread(target=poll, args=(page,)) for page in pollers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        cpu_app = cpu_seconds(server_pid) - cpu_app
        cpu_clients = time.process_time() - cpu_clients
        for s in (*sessions, *pollers):
            s.close()
        actions = store.review_times()  # the audit trail: every action each user made
        lost = ok[0] - (sum(len(actions.get(u, [])) for u in users) - done_before)
        lines.append(
            f"  {n_clients:>2} client(s) x {duration:.0f} s: {ok[0]} accepts, "
            f"{ok[0] / wall:.1f} actions/s, p50 {percentile(latencies, 50):.0f} ms, "
            f"p95 {percentile(latencies, 95):.0f} ms, max {max(latencies):.0f} ms, "
            f"errors {len(errors)}, lost {lost}; CPU per action: app "
            f"{cpu_app / max(ok[0], 1) * 1000:.1f} ms, clients "
            f"{cpu_clients / max(ok[0], 1) * 1000:.1f} ms; load average "
            f"{os.getloadavg()[0]:.2f}"
            if latencies else
            f"  {n_clients} client(s): no action succeeded; errors: {errors[:3]}")
        if errors:
            lines.append(f"    first error: {errors[0]}")
        if pollers:
            per_page = pollers[0].timers()
            lines.append(
                f"    meanwhile each page's {len(per_page)} timers (every "
                f"{', '.join(sorted({f'{every:g}' for every, _ in per_page}))} s): "
                f"{len(ticks)} ticks, p95 {percentile(ticks, 95) if ticks else 0:.0f} ms, "
                f"errors {len(tick_errors)}" + (f" (first: {tick_errors[0]})" if tick_errors
                                                 else ""))

    run(1, min(seconds, 15.0), "solo")
    run(clients, seconds, "team")
    return lines


# --------------------------------------------------------------------------------------------
# The browser


def browser_key_press(url: str, presses: int = 20) -> str:
    """Key press "a" (accept) on the Curate tab, with the whole pending queue loaded, in
    Chromium: milliseconds to the next pair painted and to the server's answer shown,
    counted in the page (``bench/curate_keys_bench.py``'s ``PRESS``: a Playwright poll
    would wait behind the page's own work and count that too). Between presses the page
    settles (the answer shown, then 300 ms), as a reviewer reads before the next key.

    Depends on the Curate page (ui/curate.py and its keyboard script): the queue is loaded
    with the Load button (#curate-load), the pair shown is #curate-question's data-pair-id.
    Returns a line of results, or why it was skipped."""
    if not Path(CHROMIUM).exists():
        return "  skipped: Chromium not installed"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "  skipped: playwright not installed"
    from bench.curate_keys_bench import PRESS

    shown, answered = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox",
                                                                    "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(url)
            page.get_by_role("tab", name="Curate").click()
            user = page.locator("#curate-user textarea, #curate-user input").first
            if user.count():
                user.fill("keys")
            if not page.locator("#curate-load").count():
                return "  skipped: the Curate page has no #curate-load button"
            page.locator("#curate-load").click()
            question = page.locator("#curate-question")
            question.wait_for(timeout=60_000)
            settled = "() => window.tpoCurate && window.tpoCurate.busy() === 0"
            for _ in range(presses):
                page.wait_for_function(settled, timeout=60_000)
                page.wait_for_timeout(300)
                pair = question.get_attribute("data-pair-id")
                visible, confirmed = page.evaluate(PRESS, ["a", question.inner_text(),
                                                           f"Pair #{pair}:"])
                if visible < 0 or confirmed < 0:
                    return "  skipped: pressing 'a' did not show the next pair and the answer"
                shown.append(visible)
                answered.append(confirmed)
        finally:
            browser.close()
    return (f"  {len(shown)} presses: next pair painted p50 {percentile(shown, 50):.0f} ms, "
            f"p95 {percentile(shown, 95):.0f} ms, max {max(shown):.0f} ms; the server's "
            f"answer shown p50 {percentile(answered, 50):.0f} ms, "
            f"p95 {percentile(answered, 95):.0f} ms")


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path("data/bench/curate"))
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--client", choices=("http", "gradio"), default="http",
                        help="how the HTTP clients call the app: Gradio's queue protocol "
                             "over kept-alive connections, as a browser does (default), or "
                             "gradio_client (~110 ms of CPU per call, on the same cores)")
    parser.add_argument("--no-timers", action="store_true",
                        help="HTTP clients only accept (by default each client's page also "
                             "runs its timers, as a browser tab does)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.data, args.port)
        return
    store = build_library(args.data, args.pairs, args.videos)
    seed_decisions(store)
    print(f"pairs: {store.queue_count()}, pending {store.queue_count(status='pending')}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\n{'server side (median ms)':<48} {'new':>9} {'old':>9} {'old/new':>8}")
    for what, new, old in server_side(store):
        old_text, ratio = (f"{old:>9.1f}", f"{old / new:>7.1f}x") if old else (f"{'-':>9}", "")
        print(f"{what:<48} {new:>9.1f} {old_text} {ratio}", flush=True)
    if args.skip_http and args.skip_browser:
        return
    # The app reviews in a fresh copy of the library, so reruns measure the same queues.
    app_store = app_copy(store, args.data)
    proc, url = start_app(app_store.path.parent)
    try:
        if not args.skip_http:
            print("\nreview action round trip through the app over HTTP (accept):", flush=True)
            # Each client reviews one video's pending pairs: those with the most left first.
            videos = sorted((v for v in app_store.list_videos() if v["status"] == "ready"),
                            key=lambda v: -app_store.queue_count(status="pending",
                                                                 video_id=v["id"]))
            try:
                for line in http_round_trips(url, app_store, args.clients, args.seconds,
                                             videos, proc.pid, args.client,
                                             timers=not args.no_timers):
                    print(line, flush=True)
            except LookupError as err:
                print(f"  skipped: {err} (the Curate page changed)")
        if not args.skip_browser:
            print("\nkey press to next pair in the browser:", flush=True)
            print(browser_key_press(url), flush=True)
    finally:
        stop_app(proc)

if __name__ == "__main__":
    main()
