"""Synthetic videos with known, timed events.

A synthetic video is a slowly drifting, low-saturation background with *events* drawn on
top: a big saturated shape ("red circle") or a large number ("7"), each visible during a
known time span ``[start_s, end_s)``. Because every event is known, each video comes with
its ground truth: per-event questions that only that span answers, and whole-video
questions (counting, order). The module serves

* the demo library the app builds on first start (:data:`DEMO_SPECS`,
  :func:`build_demo_library`),
* tests, which render short clips and check frames against the spec,
* the needle-in-a-haystack evaluation (:func:`needle_spec`: one event at a chosen depth).

Rendering is deterministic: a :class:`VideoSpec` fully defines the pixels. Frame ``i`` is
shown at ``t = i / fps`` seconds and shows every event with ``start_s <= t < end_s``.
Files are H.264 MP4 (yuv420p, a keyframe exactly every ``gop`` frames) with a JSON of the
ground truth beside them (same stem). Nothing here imports gradio or torch.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

Progress = Callable[[int, int], None]
"""``progress(done, total)``, counted in frames."""

#: Saturated colours, far from the grey background so an event is unmistakable.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 225, 0),
    "green": (30, 200, 50),
    "cyan": (0, 215, 230),
    "blue": (40, 80, 245),
    "magenta": (225, 0, 225),
    "white": (255, 255, 255),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
POSITIONS = ("top-left", "top-right", "center", "bottom-left", "bottom-right")
KINDS = ("shape", "number")

#: Event size as a fraction of the frame's shorter side (81 px at 320x180).
_EVENT_SCALE = 0.45
#: Gap between the frame edge and a corner event, as a fraction of the shorter side.
_MARGIN_SCALE = 0.06
#: Background drift in pixels per second (a full cycle every width/drift seconds).
_DRIFT_PX_PER_S = 6.0
#: Bump when the pixels of an unchanged spec change, so built libraries get re-rendered.
RENDER_VERSION = 1
#: x264 speed preset. On 2 cores the demo library (6000 frames, 320x180) builds in ~6 s
#: with "ultrafast" vs ~9.5 s with "veryfast", for files ~3x bigger (~6 KB per second).
_X264_PRESET = "ultrafast"


@dataclass(frozen=True)
class Event:
    """Something visible on screen from ``start_s`` (inclusive) to ``end_s`` (exclusive).

    ``kind`` is ``"shape"`` (``shape`` names it, ``label`` is e.g. ``"red circle"``) or
    ``"number"`` (``shape`` is None, ``label`` is the number, e.g. ``"7"``). ``question``
    is answerable only from this event's time span; ``options`` (a tuple, so the event
    stays hashable) are multiple-choice options containing ``answer``. Build events with
    :func:`shape_event` / :func:`number_event`, which write the question for you.
    """

    start_s: float
    end_s: float
    kind: str
    label: str
    color: str
    shape: str | None
    position: str
    question: str
    answer: str
    options: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s:
            raise ValueError(f"event needs 0 <= start_s < end_s, got {self.start_s}..{self.end_s}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.color not in COLORS:
            raise ValueError(f"color must be one of {tuple(COLORS)}, got {self.color!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {self.position!r}")
        if (self.kind == "shape") != (self.shape in SHAPES):
            raise ValueError(f"a shape event needs a shape from {SHAPES}, a number event none")
        if self.options is not None and self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not among options {self.options}")


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render one video deterministically.

    ``duration_s`` in seconds, ``fps`` frames per second, ``width``/``height`` in pixels
    (even: yuv420p halves chroma), ``events`` sorted by time and non-overlapping, with
    distinct questions. ``seed`` picks the background pattern; ``gop`` is the keyframe
    interval in frames. ``clock`` burns a small "mm:ss" at the top centre; it is off by
    default because it leaks timing information into any question about the video.
    """

    name: str
    duration_s: float
    fps: float = 8
    width: int = 320
    height: int = 180
    events: tuple[Event, ...] = ()
    seed: int = 0
    gop: int = 250
    clock: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", tuple(self.events))  # a list would be mutable
        if not self.name or Path(self.name).name != self.name:
            raise ValueError(f"name must be a plain file stem, got {self.name!r}")
        if self.fps <= 0 or self.duration_s * self.fps < 1:
            raise ValueError("need fps > 0 and at least one frame")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even and >= 16, "
                             f"got {self.width}x{self.height}")
        if self.gop < 1:
            raise ValueError("gop must be >= 1 frame")
        for before, after in zip(self.events, self.events[1:]):
            if after.start_s < before.end_s:
                raise ValueError(f"events must be sorted and non-overlapping: "
                                 f"{before.label!r}, {after.label!r}")
        if self.events and self.events[-1].end_s > self.duration_s:
            raise ValueError(f"event {self.events[-1].label!r} ends after the video")
        questions = [e.question for e in self.events]
        if len(set(questions)) != len(questions):
            raise ValueError("two events share a question, so it would be ambiguous")

    @property
    def n_frames(self) -> int:
        """Frames in the video; frame ``i`` is shown at ``i / fps`` seconds."""
        return max(1, round(self.duration_s * self.fps))


# --- events ---------------------------------------------------------------------------


def _options(answer: str, pool: Iterable[str], key: str, n: int = 4) -> tuple[str, ...]:
    """``answer`` plus ``n - 1`` distractors from ``pool``, shuffled reproducibly by ``key``."""
    rng = random.Random(key)  # str seeds hash with SHA-512: stable across runs
    distractors = rng.sample(sorted(set(pool) - {answer}), n - 1)
    options = [answer, *distractors]
    rng.shuffle(options)
    return tuple(options)


def shape_event(start_s: float, end_s: float, shape: str, color: str,
                position: str = "center") -> Event:
    """A ``color`` ``shape`` at ``position``; the question asks for its colour."""
    question = f"What colour is the {shape} in the {position} of the frame?"
    return Event(start_s, end_s, "shape", f"{color} {shape}", color, shape, position,
                 question, color, _options(color, COLORS, question))


def number_event(start_s: float, end_s: float, number: int, color: str,
                 position: str = "center") -> Event:
    """The number ``number`` written large in ``color``; the question asks which number."""
    question = f"Which number is shown in {color}?"
    label = str(number)
    pool = [str(n) for n in range(max(10, number + 4))]
    return Event(start_s, end_s, "number", label, color, None, position,
                 question, label, _options(label, pool, question))


def random_event(rng: random.Random, start_s: float, end_s: float) -> Event:
    color, position = rng.choice(list(COLORS)), rng.choice(POSITIONS)
    if rng.random() < 0.6:
        return shape_event(start_s, end_s, rng.choice(SHAPES), color, position)
    return number_event(start_s, end_s, rng.randrange(10), color, position)


def random_events(duration_s: float, n_events: int, seed: int, *,
                  min_len_s: float = 5, max_len_s: float = 20) -> tuple[Event, ...]:
    """``n_events`` random shape/number events, non-overlapping and spread over the video.

    The video is cut into ``n_events`` equal slots and each event lies inside its own slot
    with 0.5 s to spare on both sides, so consecutive events are at least 1 s apart.
    Times are rounded to 0.1 s. Deterministic for a given seed; questions are distinct.
    """
    if n_events < 0 or not 0 < min_len_s <= max_len_s:
        raise ValueError("need n_events >= 0 and 0 < min_len_s <= max_len_s")
    if n_events == 0:
        return ()
    slot = duration_s / n_events
    pad = 0.5  # seconds kept free at each end of a slot
    if slot - 2 * pad < min_len_s:
        raise ValueError(f"{n_events} events of >= {min_len_s} s do not fit in {duration_s} s")
    rng = random.Random(seed)
    events: list[Event] = []
    for i in range(n_events):
        length = rng.uniform(min_len_s, min(max_len_s, slot - 2 * pad))
        start = i * slot + pad + rng.uniform(0, slot - 2 * pad - length)
        start, end = round(start, 1), round(start + length, 1)
        used = {e.question for e in events}
        for _ in range(200):
            event = random_event(rng, start, end)
            if event.question not in used:
                break
        else:
            raise ValueError(f"cannot find {n_events} events with distinct questions")
        events.append(event)
    return tuple(events)


# --- ground truth ----------------------------------------------------------------------


def _describe(event: Event) -> str:
    if event.kind == "shape":
        return f"the {event.label}"
    return f"the {event.color} number {event.label}"


def _count_question(events: list[Event], noun: str) -> dict:
    answer = str(len(events))
    pool = [str(n) for n in range(max(0, len(events) - 3), len(events) + 4)]
    question = f"How many {noun} appear in the video?"
    return {"type": "count", "question": question, "answer": answer,
            "options": list(_options(answer, pool, question))}


def _video_questions(spec: VideoSpec) -> list[dict]:
    """Questions about the whole video: counts, which came first, the order of numbers."""
    shapes = [e for e in spec.events if e.kind == "shape"]
    numbers = [e for e in spec.events if e.kind == "number"]
    questions = []
    if shapes:
        questions.append(_count_question(shapes, "shapes"))
    if numbers:
        questions.append(_count_question(numbers, "numbers"))
    names = [_describe(e) for e in spec.events]
    distinct = [name for name in names if names.count(name) == 1]  # in time order
    if len(distinct) >= 2:
        rng = random.Random(spec.seed)
        first, second = sorted(rng.sample(range(len(distinct)), 2))
        pair = [distinct[first], distinct[second]]
        rng.shuffle(pair)
        questions.append({"type": "order",
                          "question": f"Which appeared first, {pair[0]} or {pair[1]}?",
                          "answer": distinct[first], "options": pair})
    if len(numbers) >= 2:
        sequence = [e.label for e in numbers]
        answer = ", ".join(sequence)
        candidates = {answer, ", ".join(reversed(sequence))}
        rng = random.Random(spec.seed + 1)
        for _ in range(20):
            if len(candidates) == 4:
                break
            candidates.add(", ".join(rng.sample(sequence, len(sequence))))
        if len(candidates) >= 2:  # repeated numbers alone ("8, 8") leave nothing to choose
            options = sorted(candidates)
            rng.shuffle(options)
            questions.append({"type": "sequence",
                              "question": "In what order do the numbers appear?",
                              "answer": answer, "options": options})
    return questions


def ground_truth(spec: VideoSpec) -> dict:
    """The JSON-able ground truth of ``spec``: video facts, events and whole-video questions."""
    return {
        "render_version": RENDER_VERSION,
        "name": spec.name,
        "duration_s": spec.duration_s,
        "fps": spec.fps,
        "width": spec.width,
        "height": spec.height,
        "n_frames": spec.n_frames,
        "gop": spec.gop,
        "seed": spec.seed,
        "clock": spec.clock,
        "events": [{**asdict(e), "options": list(e.options) if e.options else None}
                   for e in spec.events],
        "questions": _video_questions(spec),
    }


# --- pixels ----------------------------------------------------------------------------


def event_box(position: str, width: int, height: int) -> tuple[int, int, int, int]:
    """The square ``(x0, y0, x1, y1)`` in pixels where an event at ``position`` is drawn."""
    side = round(_EVENT_SCALE * min(width, height))
    margin = round(_MARGIN_SCALE * min(width, height))
    vertical, _, horizontal = position.partition("-")
    if position == "center":
        x0, y0 = (width - side) // 2, (height - side) // 2
    else:
        x0 = margin if horizontal == "left" else width - margin - side
        y0 = margin if vertical == "top" else height - margin - side
    return x0, y0, x0 + side, y0 + side


def _regular_polygon(cx: float, cy: float, radii: list[float],
                     start_deg: float) -> list[tuple[float, float]]:
    """Vertices at evenly spaced angles, the k-th at distance ``radii[k]`` from the centre."""
    n = len(radii)
    angles = [math.radians(start_deg + 360 * k / n) for k in range(n)]
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in zip(radii, angles)]


def _event_mask(event: Event, width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of the pixels ``event`` paints."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = event_box(event.position, width, height)
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if event.kind == "number":
        side = x1 - x0
        # Scale the font so the glyphs' ink (not the font's em box) just fills the box.
        left, top, right, bottom = ImageFont.load_default(size=side).getbbox(event.label,
                                                                            anchor="mm")
        ink = max(right - left, bottom - top)
        font = ImageFont.load_default(size=max(8, side * side // ink))
        draw.text((cx, cy), event.label, fill=255, font=font, anchor="mm",
                  stroke_width=max(1, side // 24), stroke_fill=255)  # thicker strokes read better
    elif event.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=255)
    elif event.shape == "square":
        inset = r * 0.1
        draw.rectangle((x0 + inset, y0 + inset, x1 - inset, y1 - inset), fill=255)
    else:
        radii = {"triangle": [r] * 3, "diamond": [r] * 4, "hexagon": [r] * 6,
                 "star": [r, r * 0.45] * 5}
        # An upward triangle reaches r above its centre but only r/2 below: lower it by r/4.
        top_shift = r / 4 if event.shape == "triangle" else 0
        vertices = _regular_polygon(cx, cy + top_shift, radii[event.shape], start_deg=-90)
        draw.polygon(vertices, fill=255)
    return np.asarray(canvas) > 127


def _background_strip(spec: VideoSpec) -> np.ndarray:
    """A (height, 2 * width, 3) uint8 texture, periodic in x with period ``width``.

    Frame backgrounds are windows sliding over it, so building a frame costs a slice.
    Diagonal stripes with integer x-frequencies (hence periodic) plus fixed grain: grey,
    between about 40 and 125, so saturated events stand out and the codec has real work.
    """
    rng = np.random.default_rng(spec.seed)
    x = np.arange(spec.width) / spec.width * 2 * np.pi
    y = np.arange(spec.height)[:, None] / spec.height * 2 * np.pi
    level = np.zeros((spec.height, spec.width))
    for freq in (1, 2, 3):
        level += np.sin(freq * x + rng.integers(1, 4) * y + rng.uniform(0, 2 * np.pi)) / freq
    level = 80 + 22 * level + rng.normal(0, 4, level.shape)
    tint = np.array([0.95, 1.0, 1.1])  # a faint blue cast; far below event saturation
    texture = np.clip(level[..., None] * tint, 0, 255).astype(np.uint8)
    return np.concatenate([texture, texture], axis=1)


def _clock_patch(seconds: int, height: int) -> np.ndarray:
    """A small white-on-black "mm:ss" (or "h:mm:ss") image as a (h, w, 3) uint8 array."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
    font = ImageFont.load_default(size=max(8, height // 14))
    x0, y0, x1, y1 = font.getbbox(text)
    patch = Image.new("RGB", (x1 + 4, y1 + 4), (0, 0, 0))
    ImageDraw.Draw(patch).text((2, 2), text, fill=(255, 255, 255), font=font)
    return np.asarray(patch)


def _layers(spec: VideoSpec) -> list[tuple[Event, np.ndarray, np.ndarray]]:
    """(event, (height, width) bool mask, RGB uint8 colour) for each event of ``spec``."""
    return [(e, _event_mask(e, spec.width, spec.height), np.array(COLORS[e.color], np.uint8))
            for e in spec.events]


def _frame(spec: VideoSpec, strip: np.ndarray, layers: list, i: int) -> np.ndarray:
    """Frame ``i`` without the clock: the background window at its time plus every event
    shown then, as (height, width, 3) uint8 RGB."""
    t = i / spec.fps
    offset = round(t * _DRIFT_PX_PER_S) % spec.width
    frame = strip[:, offset:offset + spec.width].copy()
    for event, mask, color in layers:
        if event.start_s <= t < event.end_s:
            frame[mask] = color
    return frame


def _frames(spec: VideoSpec) -> Iterator[np.ndarray]:
    """Yield every frame of ``spec`` as (height, width, 3) uint8 RGB."""
    strip, layers = _background_strip(spec), _layers(spec)
    clock_second, clock = -1, None
    for i in range(spec.n_frames):
        frame = _frame(spec, strip, layers, i)
        if spec.clock:
            t = i / spec.fps
            if int(t) != clock_second:  # redraw the clock only when its text changes
                clock_second, clock = int(t), _clock_patch(int(t), spec.height)
            h, w = clock.shape[:2]
            x = (spec.width - w) // 2
            frame[2:2 + h, x:x + w] = clock
        yield frame


def render_frames(spec: VideoSpec, times: Iterable[float]) -> list[np.ndarray]:
    """The frames of ``spec`` on screen at ``times`` (s), as (height, width, 3) uint8 RGB.

    Frame ``i = floor(t * fps)`` (clipped to the video) is the one shown at ``t``: the same
    pixels :func:`render_video` encodes for it (less the clock of a ``clock=True`` spec),
    without encoding or decoding. The demo model
    trains on frames made this way, thousands of clips a minute.
    """
    strip, layers = _background_strip(spec), _layers(spec)
    return [_frame(spec, strip, layers, min(max(int(math.floor(t * spec.fps + 1e-9)), 0),
                                            spec.n_frames - 1))
            for t in times]


# --- needle in a haystack and the demo library -------------------------------------------


def needle_spec(duration_s: float, depth: float, *, seed: int = 0, fps: float = 1,
                needle_len_s: float = 10, width: int = 320, height: int = 180,
                gop: int = 250) -> VideoSpec:
    """A haystack (background only) with ONE needle event starting at relative ``depth``.

    The needle starts at ``depth * (duration_s - needle_len_s)`` seconds (rounded to 0.1 s),
    so depth 0 is the very start and depth 1 ends exactly at the end. Its kind, shape,
    colour and position come from ``seed``. Low ``fps`` keeps hour-long videos cheap.
    """
    if not 0 <= depth <= 1:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    if not 0 < needle_len_s <= duration_s:
        raise ValueError("need 0 < needle_len_s <= duration_s")
    start = round(depth * (duration_s - needle_len_s), 1)
    end = min(duration_s, start + needle_len_s)
    needle = random_event(random.Random(seed), start, end)
    name = f"needle_{duration_s:g}s_depth{depth:.2f}_seed{seed}"
    return VideoSpec(name, duration_s, fps, width, height, (needle,), seed=seed, gop=gop)


DEMO_SPECS: tuple[VideoSpec, ...] = (
    VideoSpec("shapes_parade", 120, events=(
        shape_event(5, 15, "circle", "red", "top-left"),
        shape_event(22, 32, "square", "blue", "top-right"),
        shape_event(40, 52, "triangle", "yellow", "center"),
        shape_event(60, 70, "star", "magenta", "bottom-left"),
        shape_event(78, 90, "diamond", "green", "bottom-right"),
        shape_event(100, 112, "hexagon", "orange", "center"),
    ), seed=1),
    VideoSpec("countdown", 60, events=tuple(
        number_event(4 + 10 * k, 11 + 10 * k, 5 - k, color, "center")
        for k, color in enumerate(("red", "orange", "yellow", "green", "cyan"))
    ) + (shape_event(54, 59, "star", "white", "center"),), seed=2),
    VideoSpec("corner_watch", 180, events=random_events(180, 8, seed=3), seed=3),
    VideoSpec("rare_needles", 300, events=(
        shape_event(47, 53, "star", "cyan", "bottom-right"),
        number_event(161, 167, 8, "magenta", "top-left"),
        shape_event(262, 268, "triangle", "orange", "top-right"),
    ), seed=4),
    VideoSpec("mixed_signals", 90, seed=5,
              events=random_events(90, 6, seed=5, min_len_s=4, max_len_s=10)),
)
"""The demo library: five 1–5 minute videos (12.5 minutes in all) at 320x180, 8 fps."""


# --- files -----------------------------------------------------------------------------


def _encode(spec: VideoSpec, path: Path, progress: Progress | None) -> None:
    n = spec.n_frames
    step = max(1, n // 100)  # report about 100 times: callers may do real work per call
    # faststart puts the index first, so browsers can play the file while it downloads.
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(spec.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.gop_size = spec.gop
        # scenecut=0 and min-keyint=gop: keyframes exactly every gop frames, never at an
        # event's onset, so seeking behaves as it would on the advertised interval.
        stream.options = {"preset": _X264_PRESET,
                          "x264-params": f"keyint={spec.gop}:min-keyint={spec.gop}:scenecut=0"}
        for i, rgb in enumerate(_frames(spec)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
            if progress and ((i + 1) % step == 0 or i + 1 == n):
                progress(i + 1, n)
        container.mux(stream.encode(None))


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a hidden temp file beside ``path``, then rename it to ``path``.

    A killed or failed write leaves at most a hidden temp file, never a half ``path``.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render_video(spec: VideoSpec, path: str | os.PathLike, *,
                 progress: Progress | None = None) -> dict:
    """Render ``spec`` to an H.264 MP4 at ``path`` and its ground truth to ``path`` .json.

    Both files are written atomically, the JSON last: a video whose JSON exists is complete.
    ``progress(done_frames, total_frames)`` is called about 100 times. Returns the ground truth.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = ground_truth(spec)
    write_atomically(path, lambda tmp: _encode(spec, tmp, progress))
    write_atomically(path.with_suffix(".json"),
                      lambda tmp: tmp.write_text(json.dumps(truth, indent=2), encoding="utf-8"))
    return truth


def _is_rendered(spec: VideoSpec, video: Path) -> bool:
    """True when ``video`` and a JSON matching ``spec`` (not an older spec's) both exist."""
    try:
        saved = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return video.is_file() and saved == json.loads(json.dumps(ground_truth(spec)))


def build_demo_library(out_dir: str | os.PathLike, specs: Iterable[VideoSpec] = DEMO_SPECS, *,
                       progress: Progress | None = None) -> list[Path]:
    """Render each spec to ``out_dir/<name>.mp4`` unless it is already there.

    A video is skipped when it and its JSON exist and the JSON matches the spec, so a
    changed spec (or :data:`RENDER_VERSION`) is re-rendered. ``progress(done_frames,
    total_frames)`` counts frames over the whole library, skipped videos included.
    Returns the video paths in spec order.
    """
    specs = tuple(specs)
    if len({s.name for s in specs}) != len(specs):
        raise ValueError("spec names must be distinct: they name the files")
    out = Path(out_dir)
    total = sum(s.n_frames for s in specs)
    done = 0
    paths = []
    for spec in specs:
        path = out / f"{spec.name}.mp4"
        if not _is_rendered(spec, path):
            report = (lambda i, _n, base=done: progress(base + i, total)) if progress else None
            render_video(spec, path, progress=report)
        elif progress:
            progress(done + spec.n_frames, total)
        done += spec.n_frames
        paths.append(path)
    return paths
