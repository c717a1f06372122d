"""Opening and writing rosbag2 files with ``rosbags``, with one clear error per bad bag; the tools'
output directories, which they alone may delete.

:class:`BagWriter` registers a connection per topic on first use (definition and RIHS01 hash
from the type store, or copied from the input bag) and is always closed properly, so a bag cut
short by an error or Ctrl-C still has its metadata, index and summary and opens in ``ros2 bag``.
:func:`open_bag` turns every way a bag can be unusable (missing, not a bag, corrupt, truncated,
empty, no topics) into a :class:`BagError` naming the bag and what to do.

Ownership. make-bag and replay write a marker file, :data:`MARKER` (JSON: ``tool``,
``version``, ``created``), into their output directory before anything else
(:func:`create_output_dir`). :func:`check_output_path` lets ``--overwrite`` delete only a
directory carrying the same tool's marker (or an empty one); it refuses a symbolic link, the
input bag reached in any way (resolved paths: the same directory, a parent or a child of it), a
directory without the marker (a user's bag, a folder with a stray ``metadata.yaml``, an output of
an older version: those are deleted by hand) and another tool's output.

Crash safety. A process killed with SIGKILL (or by the OOM killer) never closes its bag: an
mcap lacks its summary and footer, an sqlite3 bag its metadata.yaml, and rosbag2 readers refuse
both. So :meth:`BagWriter.commit`, called after every finished frame, writes the frame's messages
through to the file (the pending mcap chunk is closed and flushed; the sqlite3 transaction is
committed), then replaces the progress journal :data:`PROGRESS` atomically (temporary file +
``os.replace``) with the number of messages now whole in the file, each topic's type and
RIHS01 hash and the tool's own counts. The journal thus never claims more than the file holds, and
:func:`~stereo_semantic_ros.bagtools.recovery.repair_output` (``--repair DIR``) rebuilds a
readable bag from exactly those messages. Nothing is fsync'ed: this survives the process dying,
not the machine losing power. A tool that finishes deletes its journal; one still present marks
an unfinished output.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.storage_mcap import McapWriter

from stereo_semantic_ros import __version__
from stereo_semantic_ros.bagtools import messages

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
MARKER = ".stereo_semantic_output"
"""File marking a directory as written by one of these tools (JSON: tool, version, created)."""
PROGRESS = "progress.json"
"""Progress journal of an output being written; present only while unfinished."""
REPLAY_TOOL = "stereo-semantic-replay"
MAKE_BAG_TOOL = "stereo-semantic-make-bag"
TOOLS = (REPLAY_TOOL, MAKE_BAG_TOOL)


class BagError(Exception):
    """A bag that cannot be read or written; the message says which and why.

    Not a ValueError on purpose: the CLIs map it to exit code 2, and it must not be mistaken
    for one frame's bad data (which replay counts and skips).
    """


def storage_plugin(name: str) -> StoragePlugin:
    """``mcap`` or ``sqlite3`` -> the rosbags plugin."""
    try:
        return STORAGES[name]
    except KeyError:
        raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {name!r}") from None


def format_size(num_bytes: int) -> str:
    """Bytes as ``12.3 MiB``."""
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """``data`` as JSON at ``path``, replaced in one step: a reader (or a process killed
    half-way) sees the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The ownership marker of ``directory``; None without one (or when it is unreadable)."""
    if directory.is_symlink() or not directory.is_dir():
        return None
    return read_json(directory / MARKER)


def create_output_dir(path: Path, tool: str) -> Path:
    """Create ``path`` (it must not exist) with ``tool``'s marker as its first file.

    Raises:
        BagError: ``path`` cannot be created.
    """
    try:
        path.mkdir(parents=True)
        # O_EXCL: a marker is written once, by the run that created the directory
        fd = os.open(path / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"tool": tool, "version": __version__, "created": now_iso()}) + "\n")
    except OSError as exc:
        raise BagError(f"cannot create {path}: {exc.strerror or exc}") from None
    return path


def is_unfinished(path: Path) -> bool:
    """Whether ``path`` is an output of these tools whose writer never finished (killed)."""
    return read_marker(path) is not None and (path / PROGRESS).exists()


def _refuse_input(path: Path, inputs: Iterable[str | Path]) -> None:
    target = path.resolve()
    for given in inputs:
        src = Path(given).resolve()
        if target == src or target in src.parents:
            raise BagError(
                f"--out {path} is (or contains) the input bag {given}; refusing to write there "
                "or delete it: choose another --out"
            )
        if src in target.parents:
            raise BagError(
                f"--out {path} is inside the input bag {given}; refusing to write into a "
                "recording: choose another --out"
            )


def _remove_own_output(path: Path, tool: str) -> None:
    """Delete ``path`` if it is ``tool``'s output (or empty); else a :class:`BagError`."""
    if not path.is_dir():
        raise BagError(
            f"--out {path} is a file, not an output directory; refusing to delete it even with "
            "--overwrite: remove it yourself or choose another --out"
        )
    entries = [p.name for p in path.iterdir()]
    # empty, or only a marker (a run killed while writing it): nothing of value to lose
    if entries and entries != [MARKER]:
        owner = (read_marker(path) or {}).get("tool")
        if owner is None:
            if {"metadata.yaml", "report.json", "bag"} & set(entries):
                raise BagError(
                    f"{path} has no {MARKER} marker, so it is a bag or folder that {tool} did "
                    f"not write, or an output of an older version of it; refusing to delete "
                    f"it even with --overwrite. If it is an old output, delete it by hand "
                    f"(rm -r {path}); else choose another --out"
                )
            raise BagError(
                f"{path} exists and was not written by {tool} (no {MARKER} marker); refusing "
                "to delete it even with --overwrite: remove it yourself or choose another --out"
            )
        if owner != tool:
            raise BagError(
                f"{path} is an output of {owner}, not of {tool}; refusing to delete it with "
                f"{tool} --overwrite: remove it yourself or choose another --out"
            )
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise BagError(f"cannot delete the earlier output {path}: {exc.strerror or exc}") from None


def check_output_path(
    path: str | Path, overwrite: bool, *, tool: str, inputs: Iterable[str | Path] = ()
) -> Path:
    """Make sure ``path`` can be created; with ``overwrite``, remove ``tool``'s earlier output.

    Refused whatever ``overwrite`` says: a symbolic link (to a directory or dangling), a path
    that is, contains or lies inside one of ``inputs`` (compared resolved), and a path below a
    file. With ``overwrite``, only an empty directory or one carrying ``tool``'s :data:`MARKER`
    is removed.

    Raises:
        BagError: one line saying why and what to do.
    """
    path = Path(path)
    if path.is_symlink():
        raise BagError(
            f"--out {path} is a symbolic link (to {os.readlink(path)}); refusing to write "
            "through it or delete it: give the real directory as --out"
        )
    _refuse_input(path, inputs)
    if path.exists():
        if not overwrite:
            hint = (
                f"it is an unfinished output (the run was killed?): `{tool} --repair {path}` "
                "makes the bag in it readable; "
                if is_unfinished(path)
                else ""
            )
            raise BagError(
                f"{path} already exists; not overwriting it ({hint}pass --overwrite to "
                "replace it, or choose another --out)"
            )
        _remove_own_output(path, tool)
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise BagError(f"cannot create --out {path}: {parent} is not a directory")
            break
    return path


class _Writer(Writer):
    """rosbags' Writer, storing into the directory :class:`BagWriter` has just created (it may
    already hold the tool's marker, which rosbags' own ``open`` would refuse)."""

    def open(self) -> None:
        self.storage = self.STORAGE_PLUGINS[self.storage_plugin](self.path, self.compression_mode)


class BagWriter:
    """A rosbag2 being written; topics are added on first write.

    Args:
        path: bag directory to create (must not exist).
        plugin: storage plugin.
        version: rosbag2 metadata version (9: Jazzy and later; 8: Humble/Iron readers).
        owner: write this tool's :data:`MARKER` into ``path`` before anything else (for a
            tool whose output directory is the bag itself).
        progress: path of the progress journal :meth:`commit` keeps (see the module docstring).

    Use as a context manager or call :meth:`close` in a ``finally``: unlike ``rosbags``'
    own context manager, which aborts on an exception (leaving no metadata), this one always
    closes properly, keeping every message written so far.
    """

    def __init__(
        self,
        path: str | Path,
        plugin: StoragePlugin,
        version: int = 9,
        *,
        owner: str | None = None,
        progress: Path | None = None,
    ) -> None:
        self.path = Path(path)
        try:
            self._writer = _Writer(self.path, version=version, storage_plugin=plugin)  # type: ignore[arg-type]
        except WriterError as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from None
        if owner is not None:
            create_output_dir(self.path, owner)
        else:
            try:
                self.path.mkdir(parents=True)
            except OSError as exc:
                raise BagError(f"cannot create bag {self.path}: {exc.strerror or exc}") from None
        self._writer.open()
        self.plugin = plugin
        self.version = version
        self.progress_path = progress
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.written = 0
        self.committed = 0
        self.closed = False
        if progress is not None:
            self.commit()

    def add_topic(
        self, topic: str, msgtype: str, msgdef: str | None = None, rihs01: str | None = None
    ) -> None:
        """Register ``topic`` now (it is listed in the bag even if no message follows)."""
        self._connection(topic, msgtype, msgdef, rihs01)

    def _connection(
        self, topic: str, msgtype: str, msgdef: str | None = None, rihs01: str | None = None
    ) -> Any:
        conn = self._connections.get(topic)
        if conn is None:
            if msgdef and rihs01:
                conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01)
            else:
                conn = self._writer.add_connection(topic, msgtype, typestore=messages.typestore())
            self._connections[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} already holds {conn.msgtype}, cannot add {msgtype}")
        return conn

    def write(self, topic: str, msg: Any, timestamp_ns: int) -> None:
        """Serialise ``msg`` (rosbags or rclpy) and write it at bag time ``timestamp_ns``."""
        msgtype = messages.msgtype_of(msg)
        data = messages.serialize(msg, msgtype)
        self.write_raw(topic, msgtype, data, timestamp_ns)

    def write_raw(
        self,
        topic: str,
        msgtype: str,
        data: bytes | memoryview,
        timestamp_ns: int,
        msgdef: str | None = None,
        rihs01: str | None = None,
    ) -> None:
        """Write already serialised CDR bytes (e.g. copied from another bag)."""
        conn = self._connection(topic, msgtype, msgdef, rihs01)
        self._writer.write(conn, int(timestamp_ns), data)
        self.counts[topic] += 1
        self.written += 1

    def commit(self, extra: Mapping[str, Any] | None = None) -> None:
        """Make every message written so far whole in the file, then record that (and
        ``extra``, e.g. the tool's frame counts) in the progress journal.

        Call after each finished frame: a process killed at any point leaves a file whose first
        ``committed_messages`` messages (as the journal says) can be recovered.
        """
        if self.closed:
            return
        storage = self._writer.storage
        # rosbags (pinned in requirements.txt) buffers an mcap chunk in memory up to 1 MiB and
        # keeps one sqlite3 transaction open until close: both would die with the process
        if isinstance(storage, McapWriter):
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
        else:
            storage.conn.commit()  # type: ignore[union-attr]
        self.committed = self.written
        if self.progress_path is not None:
            write_json_atomic(self.progress_path, self.journal(extra))

    def journal(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the progress journal says after a commit."""
        return {
            "state": "running",
            "updated": now_iso(),
            "bag": self.path.name,
            "storage": self.plugin.name.lower(),
            "bag_version": self.version,
            "committed_messages": self.committed,
            "topics": {
                topic: {"type": c.msgtype, "rihs01": c.digest, "messages": self.counts[topic]}
                for topic, c in self._connections.items()
            },
            **(extra or {}),
        }

    def close(self) -> None:
        """Write index, summary and metadata.yaml; safe to call twice."""
        if not self.closed:
            self.closed = True
            self._writer.close()

    def abort(self) -> None:
        """Stop writing without an index or metadata.yaml (what a killed process leaves)."""
        if not self.closed:
            self.closed = True
            self._writer.abort()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bag_storage_files(path: Path) -> list[Path]:
    """The storage files of a bag directory (or the file itself)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))


def open_bag(path: str | Path) -> AnyReader:
    """Open a rosbag2 (directory with metadata.yaml, or a bare .mcap / .db3 file) for reading.

    Returns an open ``AnyReader``; the caller closes it.

    Raises:
        BagError: missing path, not a rosbag2, unreadable metadata, corrupt or truncated
            storage, or a bag without any message.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        files = bag_storage_files(path)
        hint = f"; open the storage file itself: {files[0]}" if len(files) == 1 else ""
        for owner_dir in (path, path.parent):
            if is_unfinished(owner_dir):
                hint = (
                    f"; it is an unfinished output (the run was killed?): "
                    f"`{REPLAY_TOOL} --repair {owner_dir}` makes it readable"
                )
        raise BagError(f"{path} is not a rosbag2 directory (no metadata.yaml){hint}")
    if path.is_file() and path.suffix not in (".mcap", ".db3"):
        raise BagError(f"{path} is not a rosbag2: expected a bag directory or a .mcap/.db3 file")
    reader = AnyReader([path], default_typestore=messages.typestore())
    try:
        reader.open()
    except (
        AnyReaderError,
        ReaderError,
        sqlite3.DatabaseError,
        struct.error,
        EOFError,
        OSError,
        KeyError,
        ValueError,
        IndexError,
        AssertionError,
    ) as exc:
        # rosbags reports damage in the storage file as whichever of these its parser hit
        raise BagError(
            f"bag {path} is corrupt or truncated and cannot be opened ({type(exc).__name__}: "
            f"{exc}); re-record it, or try `ros2 bag reindex` (sqlite3) / `mcap recover` (mcap)"
        ) from None
    if not reader.connections:
        reader.close()
        raise BagError(f"bag {path} has no topics")
    if reader.message_count == 0:
        reader.close()
        raise BagError(f"bag {path} is empty (its topics hold no messages)")
    return reader


def topics_of(reader: AnyReader) -> dict[str, tuple[str, int]]:
    """``{topic: (msgtype, message count)}`` of an open bag."""
    out: dict[str, tuple[str, int]] = {}
    for conn in reader.connections:
        msgtype, count = out.get(conn.topic, (conn.msgtype, 0))
        out[conn.topic] = (msgtype, count + conn.msgcount)
    return out


def connection_definition(conn: Any) -> tuple[str | None, str | None]:
    """(message definition, RIHS01 hash) of an input connection, for copying it verbatim;
    (None, None) when the bag lacks either (the type store then supplies them)."""
    msgdef = getattr(conn.msgdef, "data", None) or None
    digest = conn.digest if str(conn.digest or "").startswith("RIHS01_") else None
    return (msgdef, digest) if msgdef and digest else (None, None)


def normalize_topic(name: str) -> str:
    """Bags store fully qualified names: ``left/image_rect`` -> ``/left/image_rect``."""
    name = name.strip()
    return name if name.startswith("/") else "/" + name


def iter_topic_names(reader: AnyReader) -> Iterable[str]:
    return sorted({c.topic for c in reader.connections})
