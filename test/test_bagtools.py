"""make-bag and replay: round trips through real bags, read back by independent readers.

Bags are tiny (4 synthetic 64x32 frames) and the network is the untrained ESP joint network with
max_disparity 16 on the CPU, so every test runs in seconds. Output bags are decoded with the
``mcap`` + ``mcap_ros2`` packages (mcap) or Python's sqlite3 + rclpy's deserializer (sqlite3),
never with the ``rosbags`` code that wrote them.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from stereo_semantic_ros.bagtools import messages as M
from stereo_semantic_ros.bagtools.bagio import BagWriter, storage_plugin
from stereo_semantic_ros.bagtools.make_bag import (
    DEFAULT_FRAME_ID,
    DEFAULT_START_S,
    GT_INVALID,
    TOPICS,
    frame_messages,
    synthetic_samples,
    write_bag,
)
from stereo_semantic_ros.bagtools.make_bag import main as make_bag_main
from stereo_semantic_ros.bagtools.replay import main as replay_main
from stereo_semantic_ros.frames.stats import format_stamp
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.pointcloud import cloud_dtype
from stereo_semantic_ros.replay.cli import run_replay
from stereo_semantic_ros.replay.options import (
    ReplayOptions,
    default_params_file,
    load_settings,
)
from stereo_semantic_ros.ros.outputs import OUTPUT_TOPICS

REPO = Path(__file__).resolve().parents[1]
W, H, N = 64, 32, 4
RATE = 10.0
PERIOD_NS = 100_000_000
START_NS = round(DEFAULT_START_S * 1e9)
OUTPUTS = tuple("/" + t for t in OUTPUT_TOPICS)
POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 8: "<f8"}


# ------------------------------------------------------------------------------------ helpers


def read_mcap(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    """{topic: [(log time, decoded message)]} with the independent mcap + mcap_ros2 reader."""
    (path,) = bag.glob("*.mcap")
    out: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            out[channel.topic].append((message.log_time, decoded))
    return dict(out)


def read_sqlite3(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    """Same for a .db3 bag: Python's sqlite3 for the rows, rclpy's deserializer for the CDR."""
    import importlib

    from rclpy.serialization import deserialize_message

    (path,) = bag.glob("*.db3")
    con = sqlite3.connect(path)
    try:
        topics = {
            tid: (name, typ) for tid, name, typ in con.execute("SELECT id, name, type FROM topics")
        }
        rows = con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp")
        out: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        for tid, stamp, data in rows:
            name, typ = topics[tid]
            pkg, _, cls = typ.split("/")
            msg_type = getattr(importlib.import_module(f"{pkg}.msg"), cls)
            out[name].append((stamp, deserialize_message(data, msg_type)))
    finally:
        con.close()
    return dict(out)


def image_pixels(msg: Any) -> np.ndarray:
    """Pixels decoded from an Image's own encoding, size and step (no package code)."""
    dtype, channels = {"rgb8": ("u1", 3), "mono8": ("u1", 1), "32FC1": ("<f4", 1)}[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    arr = rows[:, : msg.width * channels * itemsize].copy().view(dtype)
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return arr.reshape(shape)


def cloud_from_msg(msg: Any) -> np.ndarray:
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [POINTFIELD_DTYPES[f.datatype] for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    return np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, msg.width)


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def write_params(path: Path, **extra: Any) -> Path:
    values = {"weights": "", "max_disparity": 16, "device": "cpu", **extra}
    path.write_text(yaml.safe_dump({"stereo_semantic_node": {"ros__parameters": values}}))
    return path


def write_frames(
    path: Path,
    samples: list,
    *,
    order: list[int] | None = None,
    drop: set[tuple[int, str]] = frozenset(),
    mutate: dict[tuple[int, str], Any] | None = None,
    storage: str = "mcap",
) -> Path:
    """A make-bag style bag of ``samples`` with frames written in ``order`` (receive time
    follows the write order), roles in ``drop`` left out and ``mutate[(i, role)](msg)``
    applied."""
    mutate = mutate or {}
    writer = BagWriter(path, storage_plugin(storage))
    try:
        for slot, i in enumerate(order if order is not None else range(len(samples))):
            stamp = START_NS + i * PERIOD_NS
            log = START_NS + slot * PERIOD_NS
            for role, msg in frame_messages(samples[i], stamp).items():
                if (i, role) in drop:
                    continue
                if (i, role) in mutate:
                    msg = mutate[(i, role)](msg)
                writer.write(TOPICS[role], msg, log)
    finally:
        writer.close()
    return path


def options(bag: Path, out: Path, params: Path, **kw: Any) -> ReplayOptions:
    settings, warnings = load_settings(params)
    return ReplayOptions(
        bag=bag,
        out=out,
        settings=settings,
        params_file=params,
        progress=False,
        warnings=warnings,
        **kw,
    )


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def samples() -> list:
    gen = synthetic_samples(W, H)
    return [next(gen)[1] for _ in range(N)]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bagtools")


@pytest.fixture(scope="module")
def params(work: Path) -> Path:
    return write_params(work / "params16.yaml")


@pytest.fixture(scope="module")
def pipeline(params: Path) -> StereoPipeline:
    settings, _ = load_settings(params)
    return settings.build_pipeline()


@pytest.fixture(scope="module")
def mcap_bag(work: Path) -> Path:
    summary = write_bag(
        synthetic_samples(W, H), work / "in_mcap", count=N, rate_hz=RATE, progress=False
    )
    assert summary.frames == N
    return summary.path


@pytest.fixture(scope="module")
def replayed(work: Path, mcap_bag: Path, params: Path, pipeline: StereoPipeline) -> dict:
    report = run_replay(options(mcap_bag, work / "out_mcap", params), pipeline)
    return report


# -------------------------------------------------------------------------------- make-bag


def test_make_bag_metadata_has_the_installed_ros_type_hashes(mcap_bag: Path) -> None:
    """metadata.yaml carries, per topic, the RIHS01 hash ROS 2 itself generated for the type
    (share/<pkg>/msg/<Type>.json of the installed message packages), which ros2 bag checks."""
    meta = yaml.safe_load((mcap_bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    assert meta["message_count"] == 6 * N
    seen = {}
    for entry in meta["topics_with_message_count"]:
        topic = entry["topic_metadata"]
        pkg, _, name = topic["type"].split("/")
        description = Path(sys.prefix) / "share" / pkg / "msg" / f"{name}.json"
        hashes = json.loads(description.read_text())["type_hashes"]
        expected = next(h["hash_string"] for h in hashes if h["type_name"] == topic["type"])
        assert topic["type_description_hash"] == expected, topic["name"]
        assert topic["serialization_format"] == "cdr"
        seen[topic["name"]] = (topic["type"], entry["message_count"])
    assert seen == {
        "/left/image_rect": ("sensor_msgs/msg/Image", N),
        "/right/image_rect": ("sensor_msgs/msg/Image", N),
        "/left/camera_info": ("sensor_msgs/msg/CameraInfo", N),
        "/right/camera_info": ("sensor_msgs/msg/CameraInfo", N),
        "/ground_truth/disparity": ("stereo_msgs/msg/DisparityImage", N),
        "/ground_truth/labels": ("sensor_msgs/msg/Image", N),
    }


def test_make_bag_contents_read_back_independently(mcap_bag: Path, samples: list) -> None:
    bag = read_mcap(mcap_bag)
    for i, sample in enumerate(samples):
        stamp = START_NS + i * PERIOD_NS
        msgs = {topic: bag[topic][i] for topic in TOPICS.values()}
        for topic, (log, msg) in msgs.items():
            assert log == stamp and stamp_ns(msg) == stamp, topic
        left, right = msgs[TOPICS["left_image"]][1], msgs[TOPICS["right_image"]][1]
        assert left.encoding == right.encoding == "rgb8"
        assert left.header.frame_id == DEFAULT_FRAME_ID
        assert right.header.frame_id == "right_camera_optical_frame"
        np.testing.assert_array_equal(image_pixels(left), sample.left)
        np.testing.assert_array_equal(image_pixels(right), sample.right)

        c = sample.calib
        for role, tx in (("left_info", 0.0), ("right_info", -c.fx * c.baseline)):
            info = msgs[TOPICS[role]][1]
            assert (info.width, info.height) == (W, H)
            assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
            np.testing.assert_allclose(info.k, [c.fx, 0, c.cx, 0, c.fy, c.cy, 0, 0, 1])
            np.testing.assert_allclose(info.r, np.eye(3).ravel())
            np.testing.assert_allclose(info.p, [c.fx, 0, c.cx, tx, 0, c.fy, c.cy, 0, 0, 0, 1, 0])

        gt = msgs[TOPICS["gt_disparity"]][1]
        d = image_pixels(gt.image)
        assert gt.min_disparity == 0.0 and gt.f == pytest.approx(c.fx)
        assert gt.t == pytest.approx(c.baseline)
        np.testing.assert_array_equal(d[sample.valid], sample.disparity[sample.valid])
        assert (d[~sample.valid] == GT_INVALID).all() and (~sample.valid).any()
        rows, cols = np.nonzero(sample.valid)
        roi = gt.valid_window
        assert (roi.x_offset, roi.y_offset) == (cols.min(), rows.min())
        assert (roi.width, roi.height) == (cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
        labels = msgs[TOPICS["gt_labels"]][1]
        assert labels.encoding == "mono8"
        np.testing.assert_array_equal(image_pixels(labels), sample.labels)


def test_make_bag_cli_sqlite3_and_refuses_existing_output(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli_bag"
    argv = [
        "--out",
        str(out),
        "--count",
        "2",
        "--width",
        "40",
        "--height",
        "24",
        "--storage",
        "sqlite3",
        "--rate",
        "5",
        "--no-progress",
    ]
    assert make_bag_main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 frames of 40x24" in printed and str(out) in printed
    bag = read_sqlite3(out)
    stamps = [stamp_ns(m) for _, m in bag["/left/image_rect"]]
    assert stamps == [START_NS, START_NS + 200_000_000]  # 5 Hz
    assert make_bag_main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert make_bag_main([*argv, "--overwrite"]) == 0


# ------------------------------------------------------------------------------- round trip


def test_round_trip_every_output_topic_decodes_and_matches_the_pipeline(
    replayed: dict, work: Path, samples: list, pipeline: StereoPipeline
) -> None:
    frames = replayed["frames"]
    assert (frames["left_images"], frames["paired"], frames["processed"]) == (N, N, N)
    assert frames["dropped_total"] == frames["failed_total"] == 0
    bag = read_mcap(work / "out_mcap" / "bag")
    for topic in OUTPUTS:
        assert len(bag[topic]) == frames["paired"], topic
    for topic in TOPICS.values():  # inputs and ground truth copied, for RViz / Foxglove
        assert len(bag[topic]) == N, topic
    assert bag["/diagnostics"], "no /diagnostics written"

    settings, _ = load_settings(work / "params16.yaml")
    for i, sample in enumerate(samples):
        stamp = START_NS + i * PERIOD_NS
        out = {t: next(m for _, m in bag[t] if stamp_ns(m) == stamp) for t in OUTPUTS}
        for t, msg in out.items():
            assert msg.header.frame_id == DEFAULT_FRAME_ID, t
        # The same input through the same pipeline, directly.
        expected = pipeline.run(
            sample.left, sample.right, sample.calib, cloud=settings.cloud_options()
        )
        disp = out["/disparity"]
        np.testing.assert_array_equal(image_pixels(disp.image), expected.disparity)
        assert disp.f == pytest.approx(sample.calib.fx) and disp.t == pytest.approx(0.54)
        assert (disp.min_disparity, disp.max_disparity) == (0.0, 16.0)
        np.testing.assert_array_equal(image_pixels(out["/depth/image_rect"]), expected.depth)
        confidence = out["/confidence"]
        assert confidence.encoding == "32FC1"
        np.testing.assert_array_equal(image_pixels(confidence), expected.confidence)
        np.testing.assert_array_equal(image_pixels(out["/semantic/labels"]), expected.labels)

        cloud_msg = out["/points2"]
        assert [(f.name, f.offset, f.datatype, f.count) for f in cloud_msg.fields] == [
            ("x", 0, 7, 1),
            ("y", 4, 7, 1),
            ("z", 8, 7, 1),
            ("rgb", 12, 7, 1),
            ("label", 16, 6, 1),  # UINT32, as pcl::PointXYZRGBL
        ]
        assert cloud_msg.point_step == cloud_dtype().itemsize == 20
        assert (cloud_msg.height, cloud_msg.width) == (H, W)
        cloud = cloud_from_msg(cloud_msg)
        assert cloud.tobytes() == expected.points.tobytes()
        for name in ("x", "y", "z"):
            np.testing.assert_array_equal(cloud[name], expected.points[name])
        np.testing.assert_array_equal(cloud["label"], expected.points["label"])
        info = out["/depth/camera_info"]
        assert list(info.p) == list(bag["/left/camera_info"][i][1].p)


def test_round_trip_report_previews_and_summary(replayed: dict, work: Path) -> None:
    out = work / "out_mcap"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["frames"] == replayed["frames"]
    assert on_disk["topics"]["written"]["/points2"] == N
    acc = on_disk["accuracy"]
    assert acc["frames"] == N
    assert 0 <= acc["disparity"]["epe"] < 100 and 0 <= acc["segmentation"]["miou"] <= 1
    lat = on_disk["latency_ms"]["pipeline_total"]
    assert lat["n"] == N and lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert len(on_disk["per_frame"]) == N and all(f["status"] == "ok" for f in on_disk["per_frame"])
    assert on_disk["previews"] and all(Path(p).is_file() for p in on_disk["previews"])
    kinds = {Path(p).stem.split("_", 2)[-1] for p in on_disk["previews"]}
    assert {"left", "disparity", "semantic", "gt_disparity", "gt_labels", "sheet"} <= kinds


def test_rclpy_adapter_gives_the_messages_rclpy_would_serialise(
    replayed: dict, samples: list, pipeline: StereoPipeline
) -> None:
    """Replay writes build_messages' rclpy messages through messages.from_rclpy: a subscriber
    (rclpy's deserializer) must receive from our bytes exactly what it receives from rclpy's own
    serializer. Raw bytes are not compared: rclpy leaves CDR padding bytes uninitialised, and an
    in-memory rclpy message may hold float64 values in float32 fields that the wire rounds."""
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from stereo_semantic_ros.pointcloud import PointCloudOptions
    from stereo_semantic_ros.ros.outputs import OutputStyle, build_messages

    sample = samples[0]
    header = Header(stamp=Time(sec=7, nanosec=11), frame_id="cam")
    info = CameraInfo(
        header=header, width=W, height=H, k=[float(i) for i in range(9)], d=[0.5, 0.25]
    )
    result = pipeline.run(
        sample.left,
        sample.right,
        sample.calib,
        cloud=PointCloudOptions(with_confidence=True, organized=False),
    )
    msgs = build_messages(
        result,
        header,
        info,
        sample.calib,
        pipeline.label_set,
        sample.left,
        OUTPUT_TOPICS,
        OutputStyle(max_disparity=16, semantic_blend=0.5),
    )
    msgs["diag"] = DiagnosticArray(
        header=header,
        status=[
            DiagnosticStatus(
                level=DiagnosticStatus.WARN,
                name="n",
                message="m",
                hardware_id="cpu",
                values=[KeyValue(key="k", value="v")],
            )
        ],
    )
    for topic, msg in msgs.items():
        ours = deserialize_message(M.serialize(msg), type(msg))
        assert ours == deserialize_message(serialize_message(msg), type(msg)), topic


# ---------------------------------------------------------------------------------- storages


def test_sqlite3_input_and_output(
    work: Path, samples: list, params: Path, pipeline: StereoPipeline
) -> None:
    bag = write_frames(work / "in_sqlite3", samples, storage="sqlite3")
    report = run_replay(options(bag, work / "out_sqlite3", params, storage="sqlite3"), pipeline)
    assert report["frames"]["processed"] == N
    out = read_sqlite3(work / "out_sqlite3" / "bag")
    mcap_out = read_mcap(work / "out_mcap" / "bag")
    for topic in OUTPUTS:
        assert len(out[topic]) == N, topic
    # same frames, same pipeline: the same disparities whatever the storage
    for (_, a), (_, b) in zip(out["/disparity"], mcap_out["/disparity"]):
        np.testing.assert_array_equal(image_pixels(a.image), image_pixels(b.image))


def test_bare_storage_file_is_accepted(
    work: Path, mcap_bag: Path, params: Path, pipeline: StereoPipeline
) -> None:
    (mcap_file,) = mcap_bag.glob("*.mcap")
    report = run_replay(options(mcap_file, work / "out_file", params, max_frames=2), pipeline)
    assert report["frames"]["processed"] == 2
    assert read_mcap(work / "out_file" / "bag")["/points2"].__len__() == 2


# ----------------------------------------------------------------------- documented behaviour


def test_out_of_order_stamps_drop_the_late_frame_as_stale(
    work: Path, samples: list, params: Path, pipeline: StereoPipeline
) -> None:
    bag = write_frames(work / "in_order", samples, order=[0, 2, 1, 3])
    report = run_replay(options(bag, work / "out_order", params), pipeline)
    f = report["frames"]
    assert (f["processed"], f["dropped"]["stale_stamp"], f["failed_total"]) == (3, 1, 0)
    assert [d["stamp"] for d in report["drops"]] == [format_stamp(START_NS + PERIOD_NS)]
    stamps = [stamp_ns(m) for _, m in read_mcap(work / "out_order" / "bag")["/disparity"]]
    assert stamps == [START_NS + k * PERIOD_NS for k in (0, 2, 3)]


def test_missing_right_image_drops_that_frame_as_no_partner(
    work: Path, samples: list, params: Path, pipeline: StereoPipeline
) -> None:
    bag = write_frames(work / "in_noright", samples, drop={(1, "right_image")})
    report = run_replay(options(bag, work / "out_noright", params), pipeline)
    f = report["frames"]
    assert (f["left_images"], f["paired"], f["processed"]) == (N, N - 1, N - 1)
    assert f["dropped"] == {"no_partner": 1, "no_camera_info": 0, "stale_stamp": 0}
    assert report["sync"]["dropped_messages"]["superseded"] >= 1  # the lonely left image
    out = read_mcap(work / "out_noright" / "bag")
    assert [stamp_ns(m) for _, m in out["/points2"]] == [
        START_NS + k * PERIOD_NS for k in (0, 2, 3)
    ]


def test_missing_camera_info_at_the_end_is_reported(
    work: Path, samples: list, params: Path, pipeline: StereoPipeline
) -> None:
    bag = write_frames(work / "in_noinfo", samples, drop={(N - 1, "left_info")})
    report = run_replay(options(bag, work / "out_noinfo", params), pipeline)
    assert report["frames"]["processed"] == N - 1
    assert report["frames"]["dropped"]["no_camera_info"] == 1


def test_bad_encoding_and_zero_baseline_fail_their_frame_only(
    work: Path, samples: list, params: Path, pipeline: StereoPipeline
) -> None:
    def yuv(msg: Any) -> Any:
        return replace(msg, encoding="nv21")

    def zero_baseline(msg: Any) -> Any:
        p = msg.p.copy()
        p[3] = 0.0
        return replace(msg, p=p)

    bag = write_frames(
        work / "in_bad", samples, mutate={(1, "left_image"): yuv, (2, "right_info"): zero_baseline}
    )
    report = run_replay(options(bag, work / "out_bad", params), pipeline)
    f = report["frames"]
    assert f["paired"] == N and f["processed"] == N - 2
    assert f["failed"]["bad_encoding"] == 1 and f["failed"]["bad_calibration"] == 1
    details = {d["reason"]: d["detail"] for d in report["drops"]}
    assert "nv21" in details["bad_encoding"]
    assert "baseline" in details["bad_calibration"]
    statuses = [p["status"] for p in report["per_frame"]]
    assert sorted(statuses) == ["bad_calibration", "bad_encoding", "ok", "ok"]
    # the frames before and after the failures are all in the (valid, closed) output bag
    out = read_mcap(work / "out_bad" / "bag")
    assert [stamp_ns(m) for _, m in out["/semantic/color"]] == [START_NS, START_NS + 3 * PERIOD_NS]


def test_truncated_bag_is_one_clear_error(
    work: Path, mcap_bag: Path, params: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    bag = work / "in_truncated"
    shutil.copytree(mcap_bag, bag)
    (storage,) = bag.glob("*.mcap")
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
    out = work / "out_truncated"
    code = replay_main([str(bag), "--params", str(params), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("error:") == 1 and "corrupt or truncated" in err and str(bag) in err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["empty", "no_topics", "wrong_topics", "not_a_bag", "missing"])
def test_unusable_bags_give_one_clear_error(
    kind: str, work: Path, samples: list, params: Path, capsys: pytest.CaptureFixture
) -> None:
    bag = work / f"in_{kind}"
    if kind in ("empty", "no_topics"):
        writer = BagWriter(bag, storage_plugin("mcap"))
        if kind == "empty":
            writer.add_topic("/left/image_rect", M.IMAGE)  # a topic without messages
        writer.close()
        expected = "is empty" if kind == "empty" else "has no topics"
    elif kind == "wrong_topics":
        write_frames(bag, samples[:1])
        expected = "lacks the input topic(s) /stereo/left"
    elif kind == "not_a_bag":
        bag.mkdir()
        (bag / "notes.txt").write_text("hello")
        expected = "not a rosbag2 directory"
    else:
        expected = "does not exist"
    argv = [str(bag), "--params", str(params), "--out", str(work / f"out_{kind}"), "--no-progress"]
    if kind == "wrong_topics":
        argv += ["--left-image", "/stereo/left/image_rect"]
    assert replay_main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("error:") == 1
    assert not (work / f"out_{kind}").exists()


def test_refuses_to_overwrite_unless_asked(
    work: Path, mcap_bag: Path, params: Path, capsys: pytest.CaptureFixture
) -> None:
    out = work / "out_overwrite"
    argv = [
        str(mcap_bag),
        "--params",
        str(params),
        "--out",
        str(out),
        "--no-progress",
        "--max-frames",
        "1",
        "--previews",
        "0",
    ]
    assert replay_main(argv) == 0
    first = (out / "report.json").stat().st_mtime_ns
    capsys.readouterr()
    assert replay_main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "report.json").stat().st_mtime_ns == first
    assert replay_main([*argv, "--overwrite"]) == 0
    # a directory that is not a replay output is never deleted, even with --overwrite
    other = work / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    assert (
        replay_main(
            [
                str(mcap_bag),
                "--params",
                str(params),
                "--out",
                str(other),
                "--overwrite",
                "--no-progress",
            ]
        )
        == 2
    )
    assert (other / "thesis.tex").read_text() == "keep me"


def test_ctrl_c_leaves_a_closed_valid_output_bag(work: Path, params: Path) -> None:
    """SIGINT to a running replay: exit 130, report marked interrupted, and the output bag has
    its summary and metadata, holding every frame finished before the interrupt."""
    bag = work / "in_long"
    write_bag(synthetic_samples(W, H), bag, count=40, progress=False)
    out = work / "out_interrupted"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stereo_semantic_ros.bagtools.replay",
            str(bag),
            "--params",
            str(params),
            "--out",
            str(out),
            "--previews",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    seen = b""
    try:
        # wait until a frame is in the output (the progress bar shows ok=1)
        deadline = time.monotonic() + 120
        while b"ok=1" not in seen and time.monotonic() < deadline and proc.poll() is None:
            seen += os.read(proc.stderr.fileno(), 4096)
        assert proc.poll() is None, f"replay ended before the interrupt:\n{seen.decode()}"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (seen + err).decode()
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True
    done = report["frames"]["processed"]
    assert 1 <= done < 40
    written = read_mcap(out / "bag")
    for topic in OUTPUTS:
        assert len(written[topic]) == done, topic
    meta = yaml.safe_load((out / "bag" / "metadata.yaml").read_text())
    counts = {
        t["topic_metadata"]["name"]: t["message_count"]
        for t in meta["rosbag2_bagfile_information"]["topics_with_message_count"]
    }
    assert counts["/points2"] == done


def test_max_frames_and_namespace(
    work: Path, mcap_bag: Path, params: Path, pipeline: StereoPipeline
) -> None:
    report = run_replay(
        options(mcap_bag, work / "out_ns", params, max_frames=2, namespace="stereo"), pipeline
    )
    assert report["frames"]["processed"] == 2
    written = report["topics"]["written"]
    assert written["/stereo/points2"] == 2 and "/points2" not in written


def test_missing_weights_are_an_error_and_untrained_only_when_asked(tmp_path: Path) -> None:
    params = write_params(tmp_path / "p.yaml", weights="no_such_weights.pt")
    with pytest.raises(ValueError, match="not found: neither") as info:
        load_settings(params)
    assert "no_such_weights.pt" in str(info.value) and "models" in str(info.value)
    settings, warnings = load_settings(params, weights="none")
    assert settings.weights == "" and settings.weights_path() is None
    assert len(warnings) == 1 and "UNTRAINED" in warnings[0] and "as asked" in warnings[0]
    # a parameter file the node refuses is refused here too
    bad = write_params(tmp_path / "bad.yaml", queue_size=0)
    with pytest.raises(ValueError, match="queue_size"):
        load_settings(bad)
    assert default_params_file().name == "esp_joint.yaml"


def test_replay_cli_refuses_missing_weights_with_both_places(
    mcap_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = replay_main(
        [str(mcap_bag), "--out", str(tmp_path / "o"), "--weights", "runs/x/final.pt"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "not found: neither" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------ replay == live node


def test_replay_publishes_what_the_live_node_publishes(
    colcon_build: Any, work: Path, mcap_bag: Path, tmp_path: Path
) -> None:
    """The bag's frames go to the installed node over DDS (domain 61) and through replay, both
    with the installed config/esp_joint.yaml plus max_disparity 16, device cpu, untrained
    weights, min_confidence 0; every output message must be equal, field by field, header and
    data included."""
    from node_harness import OUTPUT_TYPES, Driver, NodeProcess
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import CameraInfo, Image

    prefix = colcon_build.require_success()
    installed_params = prefix / "share" / "stereo_semantic_ros" / "config" / "esp_joint.yaml"
    # min_confidence 0 as node_harness starts the untrained node (the file's threshold is the
    # shipped weights'; an untrained network's confidence is about 1/D and would mask everything)
    settings, _ = load_settings(
        installed_params,
        weights="none",
        device="cpu",
        overrides={"max_disparity": 16, "min_confidence": 0.0},
    )
    report = run_replay(
        ReplayOptions(
            bag=mcap_bag,
            out=tmp_path / "replay",
            settings=settings,
            params_file=installed_params,
            progress=False,
        )
    )
    assert report["frames"]["processed"] == N
    replayed = read_mcap_as_rclpy(tmp_path / "replay" / "bag")

    # the same input messages, as rclpy objects, in bag order
    frames: dict[int, dict[str, Any]] = defaultdict(dict)
    types = {
        "/left/image_rect": Image,
        "/right/image_rect": Image,
        "/left/camera_info": CameraInfo,
        "/right/camera_info": CameraInfo,
    }
    with AnyReader([mcap_bag]) as reader:
        conns = [c for c in reader.connections if c.topic in types]
        for conn, _, raw in reader.messages(connections=conns):
            msg = deserialize_message(raw, types[conn.topic])
            frames[stamp_ns(msg)][conn.topic.strip("/")] = msg

    domain = 61
    node = NodeProcess(prefix, colcon_build.site_packages(), domain, tmp_path / "node.log")
    driver = None
    try:
        driver = Driver(domain, node.text)
        driver.subscribe_outputs()
        driver.wait_for(
            lambda: driver.input_subscriptions() == [1, 1, 1, 1],
            90,
            "the node to subscribe to its inputs",
        )
        driver.warm_up()
        live: dict[int, dict[str, Any]] = {}
        for stamp in sorted(frames):
            msgs = frames[stamp]
            for topic in (
                "left/camera_info",
                "right/camera_info",
                "left/image_rect",
                "right/image_rect",
            ):
                driver.pubs[topic].publish(msgs[topic])
            # one frame at a time: the node never drops a frame as busy here
            live[stamp] = driver.wait_outputs(stamp, timeout=60)
    finally:
        if driver is not None:
            driver.close()
        node.stop()

    assert sorted(live) == sorted(frames) == [START_NS + i * PERIOD_NS for i in range(N)]
    for stamp, outputs in live.items():
        assert set(outputs) == set(OUTPUT_TYPES)
        for topic, msg in outputs.items():
            ours = next(m for _, m in replayed["/" + topic] if stamp_ns(m) == stamp)
            assert type(ours) is type(msg), topic
            assert ours == msg, f"{topic} at {stamp} differs between replay and the live node"


def read_mcap_as_rclpy(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    """An mcap bag's messages as rclpy objects (rclpy's deserializer on the raw CDR that the
    independent mcap reader hands out), to compare with what rclpy subscribers receive."""
    import importlib

    from rclpy.serialization import deserialize_message

    (path,) = bag.glob("*.mcap")
    out: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    with open(path, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages(log_time_order=True):
            pkg, _, cls = schema.name.split("/")
            msg_type = getattr(importlib.import_module(f"{pkg}.msg"), cls)
            out[channel.topic].append(
                (message.log_time, deserialize_message(message.data, msg_type))
            )
    return dict(out)
