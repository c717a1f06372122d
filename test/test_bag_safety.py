"""make-bag and replay delete only what they made, survive ``kill -9`` and exit truthfully.

* Ownership: both tools write a marker file (``.stereo_semantic_output``) into their output
  before any data; ``--overwrite`` deletes only a directory carrying their own marker, never the
  input bag (however it is reached: the same path, a symlink, a parent or child directory), a
  directory that merely holds a ``metadata.yaml``, or an older output without the marker.
* Crash safety: a real replay / make-bag process is killed with SIGKILL part-way; its output is
  turned into a readable bag by ``--repair`` holding exactly the frames finished before the kill,
  read back with ``rosbags`` and with the independent readers of test_bagtools; ``--overwrite``
  then replaces it. An mcap cut at many byte offsets (what a kill in the middle of a write leaves)
  repairs to the last committed frame.
* Exit codes: 3 when no frame was processed (an Image topic of undecodable bytes), 4 with
  ``--strict`` when a frame failed; the report accounts for every left image read.

Real bags, real subprocesses, no mocks. Tiny frames (64x32, untrained network, max_disparity 16,
CPU) keep each test within seconds to a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from rosbags.highlevel import AnyReader
from test_bagtools import (
    OUTPUTS,
    PERIOD_NS,
    START_NS,
    H,
    W,
    read_mcap,
    read_sqlite3,
    stamp_ns,
    write_frames,
    write_params,
)

from stereo_semantic_ros.bagtools import messages as M
from stereo_semantic_ros.bagtools.bagio import MARKER, PROGRESS, BagWriter, storage_plugin
from stereo_semantic_ros.bagtools.make_bag import TOPICS, synthetic_samples, write_bag
from stereo_semantic_ros.bagtools.make_bag import main as make_bag_main
from stereo_semantic_ros.bagtools.recovery import repair_output
from stereo_semantic_ros.bagtools.replay import EXIT_NOTHING_PROCESSED, EXIT_STRICT_FAILED
from stereo_semantic_ros.bagtools.replay import main as replay_main

REPO = Path(__file__).resolve().parents[1]
LONG = 60  # frames of the bag a replay is killed in


def env() -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_DOMAIN_ID="71",
    )


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (symlinks not followed), to prove nothing moved."""
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if "error" in line.lower()]


def replay_args(bag: Path, out: Path, params: Path, *extra: str) -> list[str]:
    return [
        str(bag),
        "--params",
        str(params),
        "--out",
        str(out),
        "--no-progress",
        "--previews",
        "0",
        *extra,
    ]


def make_bag_args(out: Path) -> list[str]:
    return ["--out", str(out), "--count", "2", "--width", "40", "--height", "24", "--no-progress"]


def read_all(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    """{topic: [(log time, message)]} through rosbags' AnyReader, every message deserialised."""
    out: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([bag], default_typestore=M.typestore()) as reader:
        for conn, log, raw in reader.messages():
            out.setdefault(conn.topic, []).append((log, reader.deserialize(raw, conn.msgtype)))
    return out


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bag_safety")


@pytest.fixture(scope="module")
def params(work: Path) -> Path:
    return write_params(work / "params16.yaml")


@pytest.fixture(scope="module")
def samples() -> list:
    gen = synthetic_samples(W, H)
    return [next(gen)[1] for _ in range(4)]


@pytest.fixture(scope="module")
def precious_bag(work: Path, samples: list) -> Path:
    """A user's recording: the four inputs plus a topic replay does not copy (/imu/data)."""
    bag = work / "recording"
    writer = BagWriter(bag, storage_plugin("mcap"))
    try:
        from test_bagtools import frame_messages

        for i, sample in enumerate(samples):
            stamp = START_NS + i * PERIOD_NS
            for role, msg in frame_messages(sample, stamp).items():
                writer.write(TOPICS[role], msg, stamp)
            writer.write("/imu/data", M.header(stamp, "imu"), stamp)
    finally:
        writer.close()
    return bag


@pytest.fixture(scope="module")
def long_bag(work: Path) -> Path:
    return write_bag(synthetic_samples(W, H), work / "long", count=LONG, progress=False).path


# ---------------------------------------------------------------------------------- ownership


@pytest.mark.parametrize("how", ["same_path", "symlink_to_it", "parent_of_it", "inside_it"])
def test_overwrite_never_deletes_the_input_bag(
    how: str,
    work: Path,
    precious_bag: Path,
    params: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """--out reaching the input bag in any way is refused with --overwrite, nothing touched."""
    before = tree(precious_bag.parent)
    if how == "same_path":
        out = precious_bag
    elif how == "symlink_to_it":
        out = tmp_path / "link"
        out.symlink_to(precious_bag, target_is_directory=True)
    elif how == "parent_of_it":
        out = precious_bag.parent
    else:
        out = precious_bag / "replayed"
    code = replay_main(replay_args(precious_bag, out, params, "--overwrite"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(error_lines(err)) == 1, err
    assert tree(precious_bag.parent) == before
    assert not (precious_bag / "replayed").exists()
    with AnyReader([precious_bag]) as reader:  # the recording still opens, /imu/data included
        assert "/imu/data" in {c.topic for c in reader.connections}
    if how == "symlink_to_it":
        assert out.is_symlink()


@pytest.mark.parametrize("tool", ["replay", "make-bag"])
@pytest.mark.parametrize("stray", ["metadata.yaml", "report.json"])
def test_a_directory_with_a_stray_metadata_file_is_refused_and_nothing_deleted(
    tool: str,
    stray: str,
    precious_bag: Path,
    params: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    other = tmp_path / "project"
    other.mkdir()
    (other / stray).write_text("rosbag2_bagfile_information: {}\n")
    (other / "thesis.tex").write_text("keep me")
    (other / "figures").mkdir()
    (other / "figures" / "plot.png").write_bytes(b"\x89PNG")
    before = tree(other)
    if tool == "replay":
        code = replay_main(replay_args(precious_bag, other, params, "--overwrite"))
    else:
        code = make_bag_main([*make_bag_args(other), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2
    (line,) = error_lines(err)
    assert "refusing to delete" in line and "older" in line and "by hand" in line
    assert tree(other) == before


def test_only_the_tools_own_marked_output_is_replaced(
    precious_bag: Path, params: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "replayed"
    args = replay_args(precious_bag, out, params, "--max-frames", "1")
    assert replay_main(args) == 0
    marker = json.loads((out / MARKER).read_text())
    assert marker["tool"] == "stereo-semantic-replay" and marker["version"] and marker["created"]
    assert not (out / PROGRESS).exists()  # a finished output holds no progress journal
    capsys.readouterr()
    assert replay_main([*args, "--overwrite"]) == 0
    # make-bag's own output: its marker sits in the bag directory, replaced by make-bag only
    made = tmp_path / "made"
    assert make_bag_main(make_bag_args(made)) == 0
    assert json.loads((made / MARKER).read_text())["tool"] == "stereo-semantic-make-bag"
    with AnyReader([made]) as reader:  # the marker does not disturb rosbag2 readers
        assert reader.message_count == 12
    assert make_bag_main([*make_bag_args(made), "--overwrite"]) == 0
    capsys.readouterr()
    before = tree(made)
    assert replay_main(replay_args(precious_bag, made, params, "--overwrite")) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "stereo-semantic-make-bag" in line
    assert tree(made) == before
    before = tree(out)
    assert make_bag_main([*make_bag_args(out), "--overwrite"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "stereo-semantic-replay" in line
    assert tree(out) == before
    # an old output (no marker) is refused with the hint to delete it by hand
    shutil.rmtree(made)
    made.mkdir()
    shutil.copytree(out / "bag", made / "bag")
    (made / "report.json").write_text("{}")
    assert replay_main(replay_args(precious_bag, made, params, "--overwrite")) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "older" in line and "by hand" in line and str(made) in line


@pytest.mark.parametrize("tool", ["replay", "make-bag"])
@pytest.mark.parametrize("target", ["directory", "dangling", "own_output"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_out_being_a_symlink_is_a_one_line_error(
    tool: str,
    target: str,
    overwrite: bool,
    precious_bag: Path,
    params: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    dest = tmp_path / "elsewhere"
    if target == "directory":
        dest.mkdir()
        (dest / "notes.txt").write_text("keep")
    elif target == "own_output":
        assert make_bag_main(make_bag_args(dest)) == 0
    link = tmp_path / "out_link"
    link.symlink_to(dest, target_is_directory=True)
    before = tree(tmp_path)
    extra = ["--overwrite"] if overwrite else []
    if tool == "replay":
        code = replay_main(replay_args(precious_bag, link, params, *extra))
    else:
        code = make_bag_main([*make_bag_args(link), *extra])
    err = capsys.readouterr().err
    assert code == 2
    (line,) = error_lines(err)
    assert "symbolic link" in line
    assert link.is_symlink() and tree(tmp_path) == before


def test_out_below_a_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "afile").write_text("x")
    assert make_bag_main(make_bag_args(tmp_path / "afile" / "bag")) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "afile" in line


# -------------------------------------------------------------------------------- kill -9


def wait_for_progress(out: Path, proc: subprocess.Popen, key: str, at_least: int) -> dict:
    """The output's progress journal once ``frames[key]`` reaches ``at_least``."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        try:
            progress = json.loads((out / PROGRESS).read_text())
        except (FileNotFoundError, json.JSONDecodeError):  # not started yet
            progress = None
        if progress and progress.get("frames", {}).get(key, 0) >= at_least:
            return progress
        time.sleep(0.01)
    raise AssertionError(f"no progress in {out} after 240 s")


def kill_9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_kill_9_mid_replay_then_repair_read_and_overwrite(
    storage: str, long_bag: Path, params: Path, tmp_path: Path
) -> None:
    out = tmp_path / "replay"
    cmd = [sys.executable, "-m", "stereo_semantic_ros.bagtools.replay"]
    args = [*replay_args(long_bag, out, params), "--storage", storage]
    proc = subprocess.Popen(
        [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), cwd=REPO
    )
    try:
        wait_for_progress(out, proc, "processed", 3)
        kill_9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (out / MARKER).is_file()
    assert not (out / "bag" / "metadata.yaml").exists()  # killed: the bag was never closed
    journal = json.loads((out / PROGRESS).read_text())
    done = journal["frames"]["processed"]
    assert 3 <= done < LONG

    # a second run without --overwrite says what the directory is and how to rescue it
    second = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env(), cwd=REPO)
    assert second.returncode == 2
    assert "unfinished" in second.stderr and "--repair" in second.stderr

    fixed = subprocess.run(
        [*cmd, "--repair", str(out)], capture_output=True, text=True, env=env(), cwd=REPO
    )
    assert fixed.returncode == 0, fixed.stderr
    assert f"{done} frames" in fixed.stdout
    assert not (out / PROGRESS).exists()
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False and "did not finish" in report["error"]
    assert report["frames"]["processed"] == done
    expected = [START_NS + i * PERIOD_NS for i in range(done)]
    msgs = read_all(out / "bag")
    independent = (read_mcap if storage == "mcap" else read_sqlite3)(out / "bag")
    for topic in OUTPUTS:
        assert [stamp_ns(m) for _, m in msgs[topic]] == expected, topic
        assert len(independent[topic]) == done, topic
    meta = yaml.safe_load((out / "bag" / "metadata.yaml").read_text())
    assert meta["rosbag2_bagfile_information"]["storage_identifier"] == storage
    counts = {
        t["topic_metadata"]["name"]: t["message_count"]
        for t in meta["rosbag2_bagfile_information"]["topics_with_message_count"]
    }
    assert counts["/points2"] == done
    assert report["topics"]["written"] == {t: n for t, n in counts.items() if n}

    again = subprocess.run(
        [*cmd, *args, "--overwrite"], capture_output=True, text=True, env=env(), cwd=REPO
    )
    assert again.returncode == 0, again.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is True and report["frames"]["processed"] == LONG


def test_kill_9_make_bag_at_several_points_then_repair(tmp_path: Path) -> None:
    """Killed before its first frame and at two points mid-run: --repair always gives a bag that
    rosbags reads, holding whole frames only (six messages each, the same stamp)."""
    cmd = [sys.executable, "-m", "stereo_semantic_ros.bagtools.make_bag"]
    for frames in (0, 1, 9):
        out = tmp_path / f"made_{frames}"
        proc = subprocess.Popen(
            [*cmd, "--out", str(out), "--count", "100000", "--width", "64", "--height", "32"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env(),
            cwd=REPO,
        )
        try:
            wait_for_progress(out, proc, "written", frames)
            kill_9(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        code = make_bag_main(["--repair", str(out)])
        assert code == 0
        with AnyReader([out]) as reader:
            stamps: dict[int, set[str]] = {}
            for conn, log, raw in reader.messages():
                msg = reader.deserialize(raw, conn.msgtype)
                assert stamp_ns(msg) == log
                stamps.setdefault(log, set()).add(conn.topic)
        assert len(stamps) >= frames
        assert all(topics == set(TOPICS.values()) for topics in stamps.values())
        assert make_bag_main([*make_bag_args(out), "--overwrite"]) == 0


def test_mcap_cut_at_any_byte_repairs_to_the_last_committed_frame(
    work: Path, samples: list, tmp_path: Path
) -> None:
    """What a kill in the middle of a write leaves: the storage file cut anywhere. The journal
    written after each flushed frame says which messages are whole; repair keeps exactly those."""
    src = tmp_path / "src"
    writer = BagWriter(src, storage_plugin("mcap"), progress=tmp_path / "journal.json")
    commits = []  # (file size, committed messages, journal text) after each frame
    try:
        from test_bagtools import frame_messages

        for i in range(12):
            stamp = START_NS + i * PERIOD_NS
            for role, msg in frame_messages(samples[i % 4], stamp).items():
                writer.write(TOPICS[role], msg, stamp)
            writer.commit({"frames": {"written": i + 1}})
            journal = (tmp_path / "journal.json").read_text()
            commits.append((src.joinpath("src.mcap").stat().st_size, i + 1, journal))
        data = src.joinpath("src.mcap").read_bytes()
    finally:
        writer.abort()
    sizes = [0] + [size for size, _, _ in commits]
    cuts = {len(data)}
    for a, b in zip(sizes, sizes[1:]):
        cuts |= {a + 1, a + 9, (a + b) // 2, b - 1, b}
    for cut in sorted(c for c in cuts if c > 0):
        done = [c for c in commits if c[0] <= cut]
        bag = tmp_path / f"cut_{cut}"
        bag.mkdir()
        (bag / MARKER).write_text(json.dumps({"tool": "stereo-semantic-make-bag"}))
        (bag / f"cut_{cut}.mcap").write_bytes(data[:cut])
        if done:
            (bag / PROGRESS).write_text(done[-1][2])
        result = repair_output(bag)
        frames = done[-1][1] if done else 0
        assert result.messages == 6 * frames, cut
        msgs = read_all(bag)
        assert sum(len(v) for v in msgs.values()) == 6 * frames
        for topic in TOPICS.values():
            assert [log for log, _ in msgs.get(topic, [])] == [
                START_NS + i * PERIOD_NS for i in range(frames)
            ]


# ------------------------------------------------------------------------------ exit codes


def test_undecodable_image_payloads_exit_3_and_every_image_is_counted(
    work: Path, samples: list, params: Path, capsys: pytest.CaptureFixture
) -> None:
    """An Image topic carrying other bytes: nothing can be processed, so replay says so."""
    bag = work / "in_garbage"
    writer = BagWriter(bag, storage_plugin("mcap"))
    try:
        from test_bagtools import frame_messages

        for i in range(6):
            stamp = START_NS + i * PERIOD_NS
            for role, msg in frame_messages(samples[i % 4], stamp).items():
                if role == "left_image":
                    writer.write_raw(TOPICS[role], M.IMAGE, b"\x00\x01\x00\x00not an image", stamp)
                else:
                    writer.write(TOPICS[role], msg, stamp)
    finally:
        writer.close()
    out = work / "out_garbage"
    code = replay_main(replay_args(bag, out, params))
    captured = capsys.readouterr()
    assert code == EXIT_NOTHING_PROCESSED == 3
    (line,) = [
        x for x in error_lines(captured.err) if x.startswith("stereo-semantic-replay: error")
    ]
    assert "no frame was processed" in line
    report = json.loads((out / "report.json").read_text())
    f = report["frames"]
    assert f["received"] == 6 and f["processed"] == 0
    assert f["failed"]["undecodable"] == 6 and f["failed_total"] == 6
    assert report["exit_code"] == 3
    assert report["messages"]["read"]["/left/image_rect"] == 6
    assert report["messages"]["undecodable"] == {"/left/image_rect": 6}
    assert "undecodable 6" in captured.out


def test_strict_fails_when_any_frame_failed(
    work: Path, samples: list, params: Path, capsys: pytest.CaptureFixture
) -> None:
    def yuv(msg: Any) -> Any:
        return replace(msg, encoding="nv21")

    bag = write_frames(work / "in_one_bad", samples, mutate={(2, "left_image"): yuv})
    assert replay_main(replay_args(bag, work / "out_lenient", params)) == 0
    strict = replay_args(bag, work / "out_strict", params, "--strict")
    assert replay_main(strict) == EXIT_STRICT_FAILED == 4
    (line,) = [
        x
        for x in error_lines(capsys.readouterr().err)
        if x.startswith("stereo-semantic-replay: error")
    ]
    assert "--strict" in line and "1 frame" in line
    report = json.loads((work / "out_strict" / "report.json").read_text())
    assert report["frames"]["processed"] == 3 and report["frames"]["failed"]["bad_encoding"] == 1
    assert report["exit_code"] == 4
    # a clean bag passes --strict
    clean = write_frames(work / "in_clean", samples)
    assert replay_main(replay_args(clean, work / "out_clean_strict", params, "--strict")) == 0


@pytest.mark.parametrize(
    "case", ["clean", "no_right_image", "no_left_image", "undecodable_right", "max_frames"]
)
def test_every_left_image_read_has_one_fate(
    case: str, work: Path, samples: list, params: Path, capsys: pytest.CaptureFixture
) -> None:
    """received + frames without a left image == processed + dropped + failed + unprocessed."""
    drop: set[tuple[int, str]] = set()
    extra: list[str] = []
    if case == "no_right_image":
        drop = {(1, "right_image")}
    elif case == "no_left_image":
        drop = {(2, "left_image")}
    elif case == "max_frames":
        extra = ["--max-frames", "2"]
    bag = work / f"in_fate_{case}"
    if case == "undecodable_right":
        writer = BagWriter(bag, storage_plugin("mcap"))
        try:
            from test_bagtools import frame_messages

            for i, sample in enumerate(samples):
                stamp = START_NS + i * PERIOD_NS
                for role, msg in frame_messages(sample, stamp).items():
                    if role == "right_image" and i == 1:
                        writer.write_raw(TOPICS[role], M.IMAGE, b"\x00\x01\x00\x00junk", stamp)
                    else:
                        writer.write(TOPICS[role], msg, stamp)
        finally:
            writer.close()
    else:
        write_frames(bag, samples, drop=drop)
    out = work / f"out_fate_{case}"
    code = replay_main(replay_args(bag, out, params, *extra))
    capsys.readouterr()
    assert code == 0
    f = json.loads((out / "report.json").read_text())["frames"]
    left = f["received"]
    # --max-frames 2 stops reading once the second frame is done
    assert left == {"no_left_image": 3, "max_frames": 2}.get(case, 4)
    assert left + f["without_left_image"] == (
        f["processed"]
        + f["dropped_total"]
        + f["failed_total"]
        + f["unprocessed_at_stop"]
        + f["left_without_fate"]
    ), f
    if case == "no_left_image":
        assert f["without_left_image"] == 1 and f["dropped"]["no_partner"] == 1
    if case == "max_frames":
        assert f["processed"] == 2
