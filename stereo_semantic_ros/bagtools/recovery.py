"""``--repair DIR``: an output of make-bag or replay whose process was killed, made readable.

A killed writer leaves (see :mod:`~stereo_semantic_ros.bagtools.bagio`, "Crash safety") a
storage file without index or metadata.yaml, and the progress journal of its last finished
frame. :func:`repair_output` reads the first ``committed_messages`` messages of that file (the
journal's count: what was whole in the file when the journal was written) with its own reader,
which stops at the first incomplete record instead of needing a summary:

* mcap: records are read in file order; a record cut short ends the scan; chunks are unpacked
  (uncompressed or zstd, CRC checked when set);
* sqlite3: the database is opened read-write, so SQLite rolls back the transaction the killed
  writer left open (its hot journal) before the rows are read in insertion order.

They are written into a fresh bag (same storage, metadata version, topic definitions; RIHS01
hashes from the journal, else computed from the definitions) in ``DIR/.repairing``, whose storage
file and metadata.yaml then replace the old ones; a repair killed half-way can be run again.
For replay, ``report.json`` is then written from the journal, marked ``"complete": false``,
saying how far the run got; the journal is deleted last.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from stereo_semantic_ros.bagtools.bagio import (
    MAKE_BAG_TOOL,
    PROGRESS,
    REPLAY_TOOL,
    TOOLS,
    BagError,
    BagWriter,
    bag_storage_files,
    now_iso,
    read_json,
    read_marker,
    storage_plugin,
    write_json_atomic,
)

MCAP_MAGIC = b"\x89MCAP0\r\n"
REPAIR_DIR = ".repairing"


class Channel(NamedTuple):
    """A topic as a storage file declares it."""

    topic: str
    msgtype: str
    msgdef: str


@dataclass
class RepairResult:
    """What :func:`repair_output` found and did."""

    path: Path
    tool: str
    bag: Path
    repaired: bool
    messages: int = 0
    frames: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None

    def summary(self) -> str:
        """One line for the terminal."""
        shown = ("received", "processed", "dropped_total", "failed_total", "written")
        done = ", ".join(f"{self.frames[k]} frames {k}" for k in shown if k in self.frames)
        if not self.repaired:
            return f"{self.path}: nothing to repair, the bag {self.bag} was closed properly"
        return (
            f"repaired {self.path}: {self.messages} messages up to the last completed frame "
            f"({done or 'no frame finished'}) in {self.bag}"
            + (f"; report: {self.report}" if self.report else "")
        )


# ------------------------------------------------------------------------------------- readers


def _u16(b: bytes, o: int) -> tuple[int, int]:
    return struct.unpack_from("<H", b, o)[0], o + 2


def _u32(b: bytes, o: int) -> tuple[int, int]:
    return struct.unpack_from("<I", b, o)[0], o + 4


def _u64(b: bytes, o: int) -> tuple[int, int]:
    return struct.unpack_from("<Q", b, o)[0], o + 8


def _str(b: bytes, o: int) -> tuple[str, int]:
    n, o = _u32(b, o)
    return b[o : o + n].decode(), o + n


def _mcap_records(read: Any) -> Iterator[tuple[int, bytes]]:
    """(opcode, payload) of each whole record; a record cut short ends the stream."""
    while True:
        head = read(9)
        if len(head) < 9:
            return
        length = int.from_bytes(head[1:], "little")
        payload = read(length)
        if len(payload) < length:
            return
        yield head[0], payload


def _chunk_records(payload: bytes) -> Iterator[tuple[int, bytes]] | None:
    """The records inside an mcap chunk; None when the chunk cannot be unpacked."""
    o = 16
    size, o = _u64(payload, o)
    crc, o = _u32(payload, o)
    compression, o = _str(payload, o)
    n, o = _u64(payload, o)
    data = payload[o : o + n]
    if compression == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]
        except ImportError:
            from backports import zstd  # rosbags' own dependency before Python 3.14
        data = zstd.decompress(data)
    elif compression:
        return None
    if len(data) != size or (crc and zlib.crc32(data) != crc):
        return None
    view = memoryview(data)
    pos = 0

    def read(k: int) -> bytes:
        nonlocal pos
        out = bytes(view[pos : pos + k])
        pos += len(out)
        return out

    return _mcap_records(read)


def mcap_messages(path: Path) -> Iterator[tuple[Channel, int, bytes]]:
    """(channel, log time, CDR bytes) of every whole message of an mcap, in file order, reading
    up to the first incomplete record (no summary or footer needed)."""
    schemas: dict[int, tuple[str, str]] = {}
    channels: dict[int, Channel] = {}

    def records(items: Iterator[tuple[int, bytes]]) -> Iterator[tuple[Channel, int, bytes]]:
        for op, payload in items:
            if op == 0x03:  # schema
                sid, o = _u16(payload, 0)
                name, o = _str(payload, o)
                _encoding, o = _str(payload, o)
                n, o = _u32(payload, o)
                schemas[sid] = (name, payload[o : o + n].decode())
            elif op == 0x04:  # channel
                cid, o = _u16(payload, 0)
                sid, o = _u16(payload, o)
                topic, o = _str(payload, o)
                name, msgdef = schemas.get(sid, ("", ""))
                channels[cid] = Channel(topic, name, msgdef)
            elif op == 0x05:  # message
                cid, o = _u16(payload, 0)
                log_time, _ = _u64(payload, 6)
                if cid in channels:
                    yield channels[cid], log_time, payload[22:]
            elif op == 0x06:  # chunk
                inner = _chunk_records(payload)
                if inner is None:
                    return
                yield from records(inner)
            elif op in (0x02, 0x0F):  # footer, data end: the summary that follows repeats
                return

    with open(path, "rb") as f:
        if f.read(8) != MCAP_MAGIC:
            return
        yield from records(_mcap_records(f.read))


def sqlite3_messages(path: Path) -> Iterator[tuple[Channel, int, bytes]]:
    """Every committed message of a rosbag2 sqlite3 file, in insertion order."""
    # read-write on purpose: SQLite rolls back the killed writer's open transaction (its hot
    # journal) on first access, so only committed rows are seen and the journal is removed
    con = sqlite3.connect(path)
    try:
        try:
            definitions = {
                typ: text
                for typ, text in con.execute(
                    "SELECT topic_type, encoded_message_definition FROM message_definitions"
                )
            }
        except sqlite3.OperationalError:  # schema before rosbag2 Iron: no definitions
            definitions = {}
        try:
            topics = {
                tid: Channel(name, typ, definitions.get(typ, ""))
                for tid, name, typ in con.execute("SELECT id, name, type FROM topics")
            }
            rows = con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
        except sqlite3.OperationalError:  # killed before the tables were created
            return
        for tid, timestamp, data in rows:
            if tid in topics:
                yield topics[tid], timestamp, bytes(data)
    finally:
        con.close()


# -------------------------------------------------------------------------------------- repair


def _rihs01(channel: Channel, journal_topics: dict[str, Any]) -> str | None:
    """The topic's RIHS01 hash: from the journal, else computed from its definition."""
    known = (journal_topics.get(channel.topic) or {}).get("rihs01") or ""
    if known.startswith("RIHS01_"):
        return known
    if not channel.msgdef:
        return None
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    try:
        store = get_typestore(Stores.EMPTY)
        store.register(get_types_from_msg(channel.msgdef, channel.msgtype))
        return store.hash_rihs01(channel.msgtype)
    except Exception:  # noqa: BLE001 - an IDL or odd definition: the type store's own hash
        return None


def _rebuild(bag: Path, stage: Path, journal: dict[str, Any]) -> int:
    """Write the first ``committed_messages`` messages of ``bag``'s storage file into a fresh
    bag at ``stage``; returns how many were written."""
    files = bag_storage_files(bag) if bag.is_dir() else []
    if len(files) > 1:
        raise BagError(f"{bag} holds {len(files)} storage files; these tools write one")
    storage = files[0].suffix[1:].replace("db3", "sqlite3") if files else journal.get("storage")
    limit = int(journal.get("committed_messages", 0))
    topics = journal.get("topics") or {}
    writer = BagWriter(
        stage, storage_plugin(storage or "mcap"), version=int(journal.get("bag_version", 9))
    )
    try:
        if files and limit:
            read = mcap_messages if storage == "mcap" else sqlite3_messages
            try:
                for channel, log_time, data in read(files[0]):
                    writer.write_raw(
                        channel.topic,
                        channel.msgtype,
                        data,
                        log_time,
                        channel.msgdef or None,
                        _rihs01(channel, topics),
                    )
                    if writer.written >= limit:
                        break
            except (sqlite3.DatabaseError, struct.error, UnicodeDecodeError, ValueError) as exc:
                # damage beyond what a killed writer leaves: keep what came before it
                print(f"repair: {files[0]} is damaged after {writer.written} messages: {exc}")
    finally:
        writer.close()
    return writer.written


def _swap_in(stage: Path, bag: Path) -> None:
    """Replace ``bag``'s storage file and metadata.yaml by the rebuilt ones in ``stage``."""
    if not bag.exists():
        stage.rename(bag)
        return
    (new,) = [p for p in stage.iterdir() if p.suffix in (".mcap", ".db3")]
    for old in bag.iterdir():
        if old.suffix in (".mcap", ".db3") and old.name != new.name:
            old.unlink()
        # a stale SQLite journal beside the new file would be "rolled back" into it
        if old.name.endswith(("-journal", "-wal", "-shm")):
            old.unlink()
    new.replace(bag / new.name)
    (stage / "metadata.yaml").replace(bag / "metadata.yaml")


def _replay_report(path: Path, bag: Path, journal: dict[str, Any], messages: int) -> Path:
    """report.json of a replay that did not finish, from its journal."""
    report_path = path / "report.json"
    done = (journal.get("frames") or {}).get("processed", 0)
    written: dict[str, int] = {}
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        for conn in reader.connections:
            written[conn.topic] = written.get(conn.topic, 0) + conn.msgcount
    report = {
        "complete": False,
        "interrupted": True,
        "exit_code": None,
        "error": (
            f"the replay did not finish (killed?) after {done} processed frames; the output bag "
            f"holds the {messages} messages written up to the last completed frame (repaired "
            f"by --repair)"
        ),
        "bag": journal.get("input_bag"),
        "storage": journal.get("storage"),
        "output_bag": str(bag),
        "report": str(report_path),
        "last_update": journal.get("updated"),
        "repaired": now_iso(),
        "frames": journal.get("frames") or {},
        "messages": journal.get("messages") or {},
        "topics": {"written": {t: n for t, n in written.items() if n}},
    }
    write_json_atomic(report_path, report)
    return report_path


def repair_output(path: str | Path) -> RepairResult:
    """Make an unfinished output of make-bag or replay readable (see the module docstring).

    A finished output is left as it is.

    Raises:
        BagError: ``path`` is not an output of these tools (no marker), or is a symbolic link.
    """
    path = Path(path)
    if path.is_symlink():
        raise BagError(f"{path} is a symbolic link; give the real directory to --repair")
    marker = read_marker(path)
    tool = (marker or {}).get("tool")
    if tool not in TOOLS:
        raise BagError(
            f"{path} is not an output of {REPLAY_TOOL} or {MAKE_BAG_TOOL} (no readable "
            f".stereo_semantic_output marker); --repair only rebuilds what they wrote. For "
            "another bag try `ros2 bag reindex` (sqlite3) or `mcap recover` (mcap)"
        )
    bag = path / "bag" if tool == REPLAY_TOOL else path
    journal_path = path / PROGRESS
    journal = read_json(journal_path)
    result = RepairResult(path, tool, bag, repaired=journal is not None)
    if journal is None and (bag / "metadata.yaml").is_file():
        return result
    journal = journal or {}
    frames = journal.get("frames") or {}
    result.frames = dict(frames)
    result.repaired = True
    if not (bag / "metadata.yaml").is_file():
        stage_root = path / REPAIR_DIR
        shutil.rmtree(stage_root, ignore_errors=True)  # a repair killed half-way
        stage_root.mkdir()
        stage = stage_root / bag.name
        result.messages = _rebuild(bag, stage, journal)
        _swap_in(stage, bag)
        shutil.rmtree(stage_root, ignore_errors=True)
    else:  # killed after closing the bag: it is whole, only the rest is missing
        result.messages = int(journal.get("committed_messages", 0))
    if tool == REPLAY_TOOL and (read_json(path / "report.json") or {}).get("complete") is not True:
        result.report = _replay_report(path, bag, journal, result.messages)
    journal_path.unlink(missing_ok=True)
    return result


def repair_main(path: Path, prog: str) -> int:
    """``--repair DIR`` of both tools: 0 repaired (or nothing to repair), 2 refused."""
    try:
        result = repair_output(path)
    except BagError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0
