"""Settings for TPO Studio: one documented, validated dataclass, overridable by ``TPO_*`` env vars.

Every place that needs a path or a knob receives a :class:`Settings` (or one of its fields);
nothing reads the environment except :meth:`Settings.from_env`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

# On a Hugging Face Space with persistent storage, /data survives restarts; data/ does not.
SPACES_PERSISTENT_DIR = Path("/data")


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``/data`` on a Space with persistent storage, else ``data/`` under the working directory."""
    env = os.environ if env is None else env
    if env.get("SPACE_ID") and SPACES_PERSISTENT_DIR.is_dir() and os.access(SPACES_PERSISTENT_DIR, os.W_OK):
        return SPACES_PERSISTENT_DIR
    return Path("data")


@dataclass
class Settings:
    """Where TPO Studio keeps its data and how the library behaves.

    Each field can be set from the environment with the variable named in its metadata.
    Paths left at ``None`` are derived from ``data_dir``.
    """

    data_dir: Path = field(default_factory=default_data_dir, metadata={"env": "TPO_DATA_DIR",
        "help": "Folder for the database, the demo library, uploads and thumbnails."})
    db_path: Path | None = field(default=None, metadata={"env": "TPO_DB",
        "help": "SQLite database file (default: DATA_DIR/tpo.db)."})
    demo_dir: Path | None = field(default=None, metadata={"env": "TPO_DEMO_DIR",
        "help": "Where the synthetic demo library is rendered (default: DATA_DIR/demo)."})
    upload_dir: Path | None = field(default=None, metadata={"env": "TPO_UPLOAD_DIR",
        "help": "Where videos uploaded in the browser are kept (default: DATA_DIR/uploads)."})
    thumb_dir: Path | None = field(default=None, metadata={"env": "TPO_THUMB_DIR",
        "help": "Cache of frame-strip thumbnails (default: DATA_DIR/thumbs)."})
    log_dir: Path | None = field(default=None, metadata={"env": "TPO_LOG_DIR",
        "help": "Background jobs' log files (default: DATA_DIR/logs)."})
    models_dir: Path | None = field(default=None, metadata={"env": "TPO_MODELS_DIR",
        "help": "Locally built models, e.g. the offline demo model (default: DATA_DIR/models)."})
    model: str = field(default="HuggingFaceTB/SmolVLM2-256M-Video-Instruct", metadata={
        "env": "TPO_MODEL", "help": "Video-LM for generation: a hub id or a local folder."})
    demo_on_start: bool = field(default=True, metadata={"env": "TPO_DEMO",
        "help": "Build and ingest the demo library when the app starts and it is absent."})
    demo_scale: float = field(default=1.0, metadata={"env": "TPO_DEMO_SCALE",
        "help": "Multiply the demo videos' durations (0 < s <= 1; small values make a quick demo)."})
    strip_frames: int = field(default=8, metadata={"env": "TPO_STRIP_FRAMES",
        "help": "Number of thumbnails in a video's frame strip."})
    thumb_size: int = field(default=160, metadata={"env": "TPO_THUMB_SIZE",
        "help": "Longer side of a frame-strip thumbnail, in pixels."})
    user: str = field(default="", metadata={"env": "TPO_USER",
        "help": "Name recorded on actions when no login is configured (default: the OS user)."})
    hf_oauth: bool = field(default=False, metadata={
        "help": "Reviewers sign in with Hugging Face: set by itself on a Space whose README "
                "metadata has hf_oauth: true (the Space then has SPACE_ID and OAUTH_CLIENT_ID)."})
    zero_gpu: bool = field(default=False, metadata={
        "help": "The app runs on a ZeroGPU Space (set by itself from SPACES_ZERO_GPU): a GPU is "
                "lent only inside a request, so background jobs run on the CPU."})
    gpu_slots: int = field(default=1, metadata={"env": "TPO_GPU_SLOTS",
        "help": "How many GPU jobs (generate, train, compare, eval) run at once on this "
                "machine; later ones wait queued. On a machine without a GPU they share the CPU."})
    # 4: on 2 cores, 20 reviewers' accepts (bench/curate_bench.py) had p95 0.51-0.65 s at 4,
    # 0.44-0.51 s at 2-3 and 0.68-0.86 s at 8 (handler threads beyond that only contend
    # for Python's GIL; SQLite takes one write at a time anyway).
    concurrency: int = field(default=4, metadata={"env": "TPO_CONCURRENCY",
        "help": "How many requests of one kind the app serves at once (reviewers' accepts, "
                "page loads...); events that start jobs or add videos stay one at a time."})
    auth: str = field(default="", metadata={"env": "TPO_AUTH",
        "help": "Log-ins for the app, 'user:password' pairs separated by commas; every "
                "review is then recorded under the logged-in name."})
    admins: str = field(default="", metadata={"env": "TPO_ADMINS",
        "help": "With log-ins (TPO_AUTH or Hugging Face sign-in): the user names, separated by "
                "commas, who may add videos by a path on the server."})
    library_roots: str = field(default="", metadata={"env": "TPO_LIBRARY_ROOTS",
        "help": "With log-ins: the server folders videos may be added from by path, separated "
                "by the OS path separator (':' on Linux); none: adding by path is refused."})

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        base = self.data_dir
        self.db_path = Path(self.db_path) if self.db_path else base / "tpo.db"
        self.demo_dir = Path(self.demo_dir) if self.demo_dir else base / "demo"
        self.upload_dir = Path(self.upload_dir) if self.upload_dir else base / "uploads"
        self.thumb_dir = Path(self.thumb_dir) if self.thumb_dir else base / "thumbs"
        self.log_dir = Path(self.log_dir) if self.log_dir else base / "logs"
        self.models_dir = Path(self.models_dir) if self.models_dir else base / "models"
        if not self.user:
            self.user = os.environ.get("USER") or "anonymous"
        self.validate()

    def logins(self) -> list[tuple[str, str]]:
        """``auth`` as (user, password) pairs; empty when the app has no log-in."""
        pairs = []
        for item in filter(None, (p.strip() for p in self.auth.split(","))):
            user, sep, password = item.partition(":")
            if not sep or not user.strip() or not password:
                raise ValueError(f"TPO_AUTH entries must be user:password, got {item.split(':')[0]!r}:…")
            pairs.append((user.strip(), password))
        return pairs

    @property
    def index_dir(self) -> Path:
        """Where videos' packet indexes are cached on disk, by content hash
        (:class:`tpo.media.index.IndexCache`): commands and job workers reopen a video indexed
        before without demuxing it again."""
        return self.data_dir / "cache" / "index"

    @property
    def multi_user(self) -> bool:
        """People log in (TPO_AUTH or Hugging Face sign-in): the app is shared, so adding
        videos by server path is limited (:mod:`tpo.access`)."""
        return bool(self.logins()) or self.hf_oauth

    def admin_names(self) -> set[str]:
        """``admins`` as a set of user names."""
        return {name.strip() for name in self.admins.split(",") if name.strip()}

    def library_root_paths(self) -> list[Path]:
        """``library_roots`` as resolved folders (symlinks and ``..`` followed)."""
        return [Path(p.strip()).expanduser().resolve()
                for p in self.library_roots.split(os.pathsep) if p.strip()]

    def validate(self) -> None:
        """Raise ``ValueError`` naming the setting (and its env var) that is out of range."""
        if not 0 < self.demo_scale <= 1:
            raise ValueError(f"demo_scale (TPO_DEMO_SCALE) must be in (0, 1], got {self.demo_scale}")
        if not 1 <= self.strip_frames <= 64:
            raise ValueError(f"strip_frames (TPO_STRIP_FRAMES) must be 1..64, got {self.strip_frames}")
        if self.logins() and self.hf_oauth:
            raise ValueError("TPO_AUTH log-ins and Hugging Face sign-in exclude each other: "
                             "unset TPO_AUTH on a Space with hf_oauth")
        if self.gpu_slots < 1:
            raise ValueError(f"gpu_slots (TPO_GPU_SLOTS) must be at least 1, got {self.gpu_slots}")
        if not 1 <= self.concurrency <= 64:
            raise ValueError(f"concurrency (TPO_CONCURRENCY) must be 1..64, got {self.concurrency}")
        if not 16 <= self.thumb_size <= 1024:
            raise ValueError(f"thumb_size (TPO_THUMB_SIZE) must be 16..1024 px, got {self.thumb_size}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Settings from ``TPO_*`` variables, then explicit ``overrides`` (e.g. a CLI ``--db``)."""
        env = os.environ if env is None else env
        values: dict = {}
        for f in fields(cls):
            raw = env.get(f.metadata.get("env", ""))
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.metadata["env"], raw, f.type)
        if "data_dir" not in values:
            values["data_dir"] = default_data_dir(env)
        # Only a Space can sign people in (elsewhere Gradio's sign-in needs a local HF token).
        values["hf_oauth"] = bool(env.get("SPACE_ID") and env.get("OAUTH_CLIENT_ID"))
        # The spaces package's own test for ZeroGPU hardware.
        values["zero_gpu"] = (env.get("SPACES_ZERO_GPU") or "").lower() in ("1", "t", "true")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes) -> "Settings":
        """A copy with some fields changed (derived paths are kept unless changed)."""
        return replace(self, **changes)


def _parse(name: str, var: str, raw: str, type_: str):
    # Field types are strings under `from __future__ import annotations`.
    try:
        if "bool" in type_:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected 1/0, true/false, yes/no or on/off")
        if "float" in type_:
            return float(raw)
        if "int" in type_:
            return int(raw)
        if "Path" in type_:
            return Path(raw).expanduser()
        return raw
    except ValueError as err:
        raise ValueError(f"{var}={raw!r} is not a valid value for {name}: {err}") from None
