"""Opening and writing rosbag2 files with ``rosbags``, with one clear error per bad bag.

:class:`BagWriter` registers a connection per topic on first use (definition and RIHS01 hash
from the type store, or copied from the input bag) and is always closed properly, so a bag cut
short by an error or Ctrl-C still has its metadata, index and summary and opens in ``ros2 bag``.
:func:`open_bag` turns every way a bag can be unusable (missing, not a bag, corrupt, truncated,
empty, no topics) into a :class:`BagError` naming the bag and what to do.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.rosbag2.errors import ReaderError

from stereo_semantic_ros.bagtools import messages as M

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


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


def _ours(path: Path) -> bool:
    """True for what these tools write: a bag directory or a replay output directory."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    return not names or "metadata.yaml" in names or "report.json" in names


def check_output_path(path: str | Path, overwrite: bool) -> Path:
    """Make sure ``path`` can be created; with ``overwrite``, remove an earlier output there.

    Only a bag directory, a replay output directory or an empty directory is removed: a path
    holding anything else is refused even with ``overwrite``.

    Raises:
        BagError: ``path`` exists and ``overwrite`` is False, or it is not ours to remove.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise BagError(
                f"{path} already exists; not overwriting it (pass --overwrite to "
                "replace it, or choose another --out)"
            )
        if not _ours(path):
            raise BagError(
                f"{path} exists and is not a bag or replay output; refusing to delete "
                "it even with --overwrite; remove it yourself or choose another --out"
            )
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class BagWriter:
    """A rosbag2 being written; topics are added on first write.

    Args:
        path: bag directory to create (must not exist).
        plugin: storage plugin.
        version: rosbag2 metadata version (9: Jazzy and later; 8: Humble/Iron readers).

    Use as a context manager or call :meth:`close` in a ``finally``: unlike ``rosbags``'
    own context manager, which aborts on an exception (leaving no metadata), this one always
    closes properly, keeping every message written so far.
    """

    def __init__(self, path: str | Path, plugin: StoragePlugin, version: int = 9) -> None:
        self.path = Path(path)
        self._writer = Writer(self.path, version=version, storage_plugin=plugin)  # type: ignore[arg-type]
        try:
            self._writer.open()
        except WriterError as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from None
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

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
                conn = self._writer.add_connection(topic, msgtype, typestore=M.typestore())
            self._connections[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} already holds {conn.msgtype}, cannot add {msgtype}")
        return conn

    def write(self, topic: str, msg: Any, timestamp_ns: int) -> None:
        """Serialise ``msg`` (rosbags or rclpy) and write it at bag time ``timestamp_ns``."""
        msgtype = M.msgtype_of(msg)
        data = M.serialize(msg, msgtype)
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

    def close(self) -> None:
        """Write index, summary and metadata.yaml; safe to call twice."""
        if not self.closed:
            self.closed = True
            self._writer.close()

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
        raise BagError(f"{path} is not a rosbag2 directory (no metadata.yaml){hint}")
    if path.is_file() and path.suffix not in (".mcap", ".db3"):
        raise BagError(f"{path} is not a rosbag2: expected a bag directory or a .mcap/.db3 file")
    reader = AnyReader([path], default_typestore=M.typestore())
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
