"""sensor_msgs/CompressedImage input: decoding as image_transport's ``compressed`` plugin encodes,
make-bag ``--compressed``, and replay of compressed bags.

The format strings are the ones compressed_image_transport's publisher writes
(``"<encoding>; <jpeg|png> compressed <bgr8|mono8|>"``); the payloads are built with OpenCV's
``imencode`` directly where the test needs bytes the package did not make. Bags are tiny (2
synthetic 64x32 frames, untrained network with max_disparity 16 on the CPU), and the compressed
topics in make-bag's output are read back with the independent ``mcap`` + ``mcap_ros2`` reader.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from stereo_semantic_ros.bagtools import messages as M
from stereo_semantic_ros.bagtools.bagio import BagError, open_bag
from stereo_semantic_ros.bagtools.make_bag import (
    TOPICS,
    synthetic_samples,
    topic_for,
    write_bag,
)
from stereo_semantic_ros.bagtools.make_bag import main as make_bag_main
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.replay.bag_input import check_input_topics, resolve_image_topics
from stereo_semantic_ros.replay.cli import run_replay
from stereo_semantic_ros.replay.options import ReplayOptions, ReplayTopics, load_settings
from stereo_semantic_ros.replay.options import build_parser as replay_parser
from stereo_semantic_ros.ros.conversions import (
    COMPRESSED_FORMATS,
    EncodingError,
    MalformedImageError,
    compress_image,
    compressed_to_rgb,
    image_to_rgb,
)
from stereo_semantic_ros.ros.stereo_inputs import RejectedFrameError, decode_stereo_inputs

W, H, N = 64, 32, 2
YY, XX = np.mgrid[0:24, 0:40]
SMOOTH = np.stack([XX * 6, YY * 9, 220 - XX * 3], -1).clip(0, 255).astype(np.uint8)
NOISE = np.random.default_rng(3).integers(0, 256, (9, 13, 3), np.uint8)
HDR = M.header(1_700_000_000_000_000_000, "left_camera_optical_frame")


def cmsg(fmt: str, data: Any) -> SimpleNamespace:
    """A CompressedImage as the readers see it (attributes only)."""
    return SimpleNamespace(header=HDR, format=fmt, data=np.asarray(data, np.uint8))


def encoded(ext: str, pixels: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(ext, pixels)
    assert ok
    return data.reshape(-1)


# ------------------------------------------------------------------------------ decoding


def test_formats_are_image_transports() -> None:
    assert COMPRESSED_FORMATS == ("jpeg", "png")
    assert compress_image(SMOOTH, "jpeg")[0] == "rgb8; jpeg compressed bgr8"
    assert compress_image(SMOOTH, "png")[0] == "rgb8; png compressed bgr8"
    assert compress_image(SMOOTH[..., 0], "jpeg")[0] == "mono8; jpeg compressed mono8"
    assert compress_image(SMOOTH[..., 0], "png")[0] == "mono8; png compressed "
    assert compress_image(SMOOTH[..., 0].astype(np.uint16), "png")[0] == "mono16; png compressed "
    with pytest.raises(ValueError, match="jpeg needs an .* got uint16"):
        compress_image(SMOOTH[..., 0].astype(np.uint16), "jpeg")
    with pytest.raises(ValueError, match="fmt must be one of jpeg, png"):
        compress_image(SMOOTH, "tiff")


def test_png_round_trip_is_exact_through_rclpy_serialisation() -> None:
    pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 message packages")
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CompressedImage

    from stereo_semantic_ros.ros.conversions import rgb_to_compressed

    msg = rgb_to_compressed(NOISE, "png")
    assert isinstance(msg, CompressedImage) and msg.format == "rgb8; png compressed bgr8"
    received = deserialize_message(serialize_message(msg), CompressedImage)
    np.testing.assert_array_equal(compressed_to_rgb(received), NOISE)
    np.testing.assert_array_equal(image_to_rgb(received), NOISE)  # dispatched by type
    # the bytes are a plain PNG of the BGR image, as image_transport sends it
    decoded = cv2.imdecode(np.frombuffer(received.data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, NOISE[..., ::-1])


def test_jpeg_round_trip_is_close() -> None:
    pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 message packages")
    from stereo_semantic_ros.ros.conversions import rgb_to_compressed

    msg = rgb_to_compressed(SMOOTH, "jpeg", quality=95)
    err = np.abs(compressed_to_rgb(msg).astype(int) - SMOOTH)
    assert err.mean() < 2 and err.max() <= 12, (err.mean(), err.max())
    # and the channels are not swapped: red grows left to right, blue falls
    rgb = compressed_to_rgb(msg)
    assert rgb[12, -1, 0] > rgb[12, 0, 0] + 150 and rgb[12, -1, 2] < rgb[12, 0, 2] - 80


def test_rosbags_message_decodes_the_same() -> None:
    for fmt in COMPRESSED_FORMATS:
        msg = M.compressed_image_msg(SMOOTH, fmt, HDR)
        assert msg.__msgtype__ == M.COMPRESSED_IMAGE
        back = M.typestore().deserialize_cdr(M.serialize(msg), M.COMPRESSED_IMAGE)
        rgb = image_to_rgb(back)
        assert rgb.shape == SMOOTH.shape
        if fmt == "png":
            np.testing.assert_array_equal(rgb, SMOOTH)
    with pytest.raises(M.MessageConversionError, match="png needs"):
        M.compressed_image_msg(np.zeros((4, 4, 4), np.uint8), "png", HDR)


@pytest.mark.parametrize(
    ("fmt", "stored"),
    [
        ("bgr8; jpeg compressed bgr8", "bgr"),
        ("rgb8; png compressed bgr8", "bgr"),
        ("rgb8; png compressed rgb8", "rgb"),  # data kept in RGB order: no swap
        ("png", "bgr"),  # older publishers: bare codec, OpenCV's BGR
        ("jpeg", "bgr"),
        ("", "bgr"),
    ],
)
def test_channel_order_follows_the_format(fmt: str, stored: str) -> None:
    pixels = NOISE[..., ::-1] if stored == "bgr" else NOISE
    ext = ".jpg" if "jpeg" in fmt else ".png"
    rgb = compressed_to_rgb(cmsg(fmt, encoded(ext, np.ascontiguousarray(pixels))))
    if ext == ".png":
        np.testing.assert_array_equal(rgb, NOISE)
    else:  # noise through JPEG is lossy, but the channel order still shows
        assert (
            np.abs(rgb.astype(int) - NOISE).mean()
            < np.abs(rgb.astype(int) - NOISE[..., ::-1]).mean()
        )


def test_grey_alpha_and_bayer_payloads() -> None:
    gray = SMOOTH[..., 1]
    for fmt, ext in (("mono8; png compressed ", ".png"), ("mono8; jpeg compressed mono8", ".jpg")):
        rgb = compressed_to_rgb(cmsg(fmt, encoded(ext, gray)))
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        assert np.abs(rgb[..., 0].astype(int) - gray).max() <= (0 if ext == ".png" else 6)
    bgra = np.concatenate([NOISE[..., ::-1], np.full(NOISE.shape[:2] + (1,), 9, np.uint8)], 2)
    rgb = compressed_to_rgb(cmsg("bgra8; png compressed bgr8", encoded(".png", bgra)))
    np.testing.assert_array_equal(rgb, NOISE)
    # image_transport sends a Bayer image as PNG untouched (no target encoding): demosaic it
    mosaic = SMOOTH[..., 1].copy()
    raw = image_to_rgb(M.image_msg(mosaic, "bayer_grbg8", HDR))
    from_png = compressed_to_rgb(cmsg("bayer_grbg8; png compressed ", encoded(".png", mosaic)))
    np.testing.assert_array_equal(from_png, raw)


def test_16_bit_png_uses_the_bit_depth() -> None:
    ramp12 = np.linspace(0, 4095, 24 * 40).round().astype(np.uint16).reshape(24, 40)
    msg = cmsg("mono16; png compressed ", encoded(".png", ramp12))
    auto = compressed_to_rgb(msg)
    assert auto.mean() > 120  # not nearly black
    np.testing.assert_array_equal(auto[..., 0], ramp12 >> 4)
    np.testing.assert_array_equal(compressed_to_rgb(msg, 12), auto)
    np.testing.assert_array_equal(compressed_to_rgb(msg, 16)[..., 0], ramp12 >> 8)
    np.testing.assert_array_equal(compressed_to_rgb(msg, 10)[..., 0], np.minimum(ramp12 >> 2, 255))


def test_corrupt_truncated_and_empty_data_are_clear_errors() -> None:
    good = encoded(".jpg", SMOOTH)
    with pytest.raises(MalformedImageError, match=r"9 bytes do not decode.*corrupt or truncated"):
        compressed_to_rgb(cmsg("rgb8; jpeg compressed bgr8", np.frombuffer(b"notajpeg!", np.uint8)))
    with pytest.raises(MalformedImageError, match="do not decode"):
        compressed_to_rgb(cmsg("rgb8; jpeg compressed bgr8", good[: len(good) // 2]))
    png = encoded(".png", SMOOTH)
    with pytest.raises(MalformedImageError, match="do not decode"):
        compressed_to_rgb(cmsg("rgb8; png compressed bgr8", png[:-20]))
    with pytest.raises(MalformedImageError, match="has no data"):
        compressed_to_rgb(cmsg("rgb8; png compressed bgr8", np.zeros(0, np.uint8)))


def test_unsupported_formats_name_what_to_do() -> None:
    with pytest.raises(EncodingError, match=r"compressedDepth.*not a camera image.*/compressed"):
        compressed_to_rgb(cmsg("16UC1; compressedDepth png", encoded(".png", SMOOTH[..., 0])))
    with pytest.raises(
        EncodingError, match=r"format 'h264'; supported: jpeg, png.*'compressed' plugin"
    ):
        compressed_to_rgb(cmsg("h264", np.ones(10, np.uint8)))
    hdr = encoded(".hdr", np.ones((4, 4, 3), np.float32))  # imdecode reads it: float pixels
    with pytest.raises(EncodingError, match=r"pixel type 'png \(float32 pixels\)'.*8- or 16-bit"):
        compressed_to_rgb(cmsg("png", hdr))
    with pytest.raises(EncodingError, match=r"'32FC1'.*supported: rgb8"):
        compressed_to_rgb(cmsg("32FC1; png compressed ", encoded(".png", SMOOTH)))


def _infos():
    from stereo_semantic_ros.calibration import StereoCalibration

    calib = StereoCalibration(fx=50.0, fy=50.0, cx=20.0, cy=12.0, baseline=0.1, width=40, height=24)
    return M.camera_info_msg(calib, HDR), M.camera_info_msg(calib, HDR, right=True)


def test_decode_stereo_inputs_takes_compressed_pairs_and_rejects_bad_ones() -> None:
    left_info, right_info = _infos()
    left = M.compressed_image_msg(SMOOTH, "png", HDR)
    right = M.compressed_image_msg(SMOOTH[:, ::-1].copy(), "png", HDR)
    left_rgb, right_rgb, calib = decode_stereo_inputs(left, right, left_info, right_info)
    np.testing.assert_array_equal(left_rgb, SMOOTH)
    np.testing.assert_array_equal(right_rgb, SMOOTH[:, ::-1])
    assert calib.baseline == pytest.approx(0.1)
    # raw left with compressed right works too (each message is decoded by its own type)
    decode_stereo_inputs(M.image_msg(SMOOTH, "rgb8", HDR), right, left_info, right_info)
    broken = cmsg("rgb8; png compressed bgr8", np.frombuffer(b"\x89PNG\r\n\x1a\nxx", np.uint8))
    with pytest.raises(RejectedFrameError) as info:
        decode_stereo_inputs(broken, right, left_info, right_info)
    assert info.value.reason == "malformed_image" and "do not decode" in str(info.value)
    depth = cmsg("16UC1; compressedDepth png", encoded(".png", SMOOTH[..., 0]))
    with pytest.raises(RejectedFrameError) as info:
        decode_stereo_inputs(left, depth, left_info, right_info)
    assert info.value.reason == "bad_encoding"


# ------------------------------------------------------------------------------ make-bag


def read_mcap(bag: Path) -> dict[str, list[tuple[str, Any]]]:
    """{topic: [(schema name, decoded message)]} with the independent mcap + mcap_ros2 reader."""
    (path,) = bag.glob("*.mcap")
    out: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, _message, decoded in reader.iter_decoded_messages(log_time_order=True):
            out[channel.topic].append((schema.name, decoded))
    return dict(out)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compressed")


@pytest.fixture(scope="module")
def samples() -> list:
    gen = synthetic_samples(W, H)
    return [next(gen)[1] for _ in range(N)]


@pytest.fixture(scope="module")
def bags(work: Path) -> dict[str, Path]:
    """raw, png and jpeg bags of the same frames; png and jpeg through the command line."""
    out = {}
    summary = write_bag(synthetic_samples(W, H), work / "raw", count=N, progress=False)
    out["raw"] = summary.path
    for fmt in COMPRESSED_FORMATS:
        argv = ["--out", str(work / fmt), "--count", str(N), "--width", str(W), "--height", str(H)]
        assert make_bag_main([*argv, "--compressed", fmt, "--no-progress"]) == 0
        out[fmt] = work / fmt
    return out


def test_make_bag_compressed_writes_image_transport_topics(bags: dict, samples: list) -> None:
    assert topic_for("left_image", "png") == "/left/image_rect/compressed"
    assert topic_for("left_info", "png") == "/left/camera_info"
    for fmt in COMPRESSED_FORMATS:
        bag = read_mcap(bags[fmt])
        assert TOPICS["left_image"] not in bag and TOPICS["right_image"] not in bag
        for side in ("left", "right"):
            msgs = bag[f"/{side}/image_rect/compressed"]
            assert len(msgs) == N
            for i, (schema, msg) in enumerate(msgs):
                assert schema == "sensor_msgs/msg/CompressedImage"
                assert msg.format == f"rgb8; {fmt} compressed bgr8"
                bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
                err = np.abs(bgr[..., ::-1].astype(int) - getattr(samples[i], side))
                assert err.max() == 0 if fmt == "png" else err.mean() < 8, (fmt, err.mean())
        # camera infos and ground truth as in a raw bag
        assert len(bag["/left/camera_info"]) == N and len(bag["/ground_truth/labels"]) == N
        assert bag["/ground_truth/labels"][0][1].encoding == "mono8"


def test_make_bag_compressed_defaults_to_jpeg_and_refuses_other_formats(work: Path) -> None:
    args = ["--out", str(work / "dflt"), "--count", "1", "--width", "16", "--height", "8"]
    assert make_bag_main([*args, "--no-progress", "--compressed"]) == 0
    bag = read_mcap(work / "dflt")
    assert bag["/left/image_rect/compressed"][0][1].format == "rgb8; jpeg compressed bgr8"
    with pytest.raises(SystemExit):
        make_bag_main(["--out", str(work / "bad"), "--compressed", "tiff"])
    assert not (work / "bad").exists()


# -------------------------------------------------------------------------------- replay


@pytest.fixture(scope="module")
def params(work: Path) -> Path:
    path = work / "params.yaml"
    values = {"weights": "", "max_disparity": 16, "device": "cpu"}
    path.write_text(yaml.safe_dump({"stereo_semantic_node": {"ros__parameters": values}}))
    return path


@pytest.fixture(scope="module")
def pipeline(params: Path) -> StereoPipeline:
    settings, _ = load_settings(params)
    return settings.build_pipeline()


def replay(bag: Path, out: Path, params: Path, pipeline: StereoPipeline, **topics: Any) -> dict:
    settings, warnings = load_settings(params)
    opts = ReplayOptions(
        bag=bag,
        out=out,
        settings=settings,
        params_file=params,
        progress=False,
        warnings=warnings,
        topics=ReplayTopics(**topics),
    )
    return run_replay(opts, pipeline)


def disparities(out: Path) -> list[np.ndarray]:
    msgs = read_mcap(out / "bag")["/disparity"]
    return [
        np.frombuffer(bytes(m.image.data), "<f4").reshape(m.image.height, m.image.width)
        for _, m in msgs
    ]


@pytest.fixture(scope="module")
def replayed(work: Path, bags: dict, params: Path, pipeline: StereoPipeline) -> dict:
    return {
        name: replay(bags[name], work / f"out_{name}", params, pipeline)
        for name in ("raw", "png", "jpeg")
    }


def test_replay_of_png_bag_equals_replay_of_raw_bag(replayed: dict, work: Path) -> None:
    for name in ("raw", "png", "jpeg"):
        frames = replayed[name]["frames"]
        assert (frames["left_images"], frames["processed"], frames["failed_total"]) == (N, N, 0)
    raw, png = disparities(work / "out_raw"), disparities(work / "out_png")
    assert len(raw) == len(png) == N
    for a, b in zip(raw, png, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    # the compressed inputs are copied into the output bag under their own names
    out = read_mcap(work / "out_png" / "bag")
    assert len(out["/left/image_rect/compressed"]) == N
    assert out["/left/image_rect/compressed"][0][0] == "sensor_msgs/msg/CompressedImage"


def test_replay_of_jpeg_bag_processes_every_frame(replayed: dict, work: Path) -> None:
    jpeg = disparities(work / "out_jpeg")
    assert len(jpeg) == N and all(np.isfinite(d).all() for d in jpeg)
    assert replayed["jpeg"]["frames"]["processed"] == N


def test_image_transport_option_resolves_and_refuses(bags: dict) -> None:
    assert replay_parser().parse_args(["b"]).image_transport == "auto"
    reader = open_bag(bags["png"])
    try:
        auto = resolve_image_topics(reader, ReplayTopics())
        assert auto.left_image == "/left/image_rect/compressed"
        assert auto.right_image == "/right/image_rect/compressed"
        check_input_topics(reader, auto, bags["png"])
        explicit = ReplayTopics(image_transport="compressed")
        assert resolve_image_topics(reader, explicit) == auto.__class__(
            left_image="/left/image_rect/compressed",
            right_image="/right/image_rect/compressed",
            image_transport="compressed",
        )
        named = ReplayTopics(left_image="/left/image_rect/compressed")
        assert resolve_image_topics(reader, named).left_image == "/left/image_rect/compressed"
        raw = ReplayTopics(image_transport="raw")
        with pytest.raises(BagError, match=r"lacks the input topic\(s\) /left/image_rect, "):
            check_input_topics(reader, resolve_image_topics(reader, raw), bags["png"])
    finally:
        reader.close()
    reader = open_bag(bags["raw"])
    try:
        auto = resolve_image_topics(reader, ReplayTopics())
        assert auto.left_image == "/left/image_rect"  # raw preferred
        compressed = resolve_image_topics(reader, ReplayTopics(image_transport="compressed"))
        with pytest.raises(BagError, match="lacks the input topic.*image_rect/compressed"):
            check_input_topics(reader, compressed, bags["raw"])
        wrong = ReplayTopics(left_image="/ground_truth/disparity", image_transport="raw")
        with pytest.raises(
            BagError,
            match=r"disparity holds stereo_msgs/msg/DisparityImage, expected sensor_msgs/msg/Image "
            r"\(--image-transport raw\)",
        ):
            check_input_topics(reader, wrong, bags["raw"])
        twice = ReplayTopics(left_image="/left/camera_info")
        with pytest.raises(BagError, match="four inputs must be four topics"):
            check_input_topics(reader, twice, bags["raw"])
    finally:
        reader.close()
    with pytest.raises(ValueError, match="image transport must be one of auto, raw, compressed"):
        ReplayTopics(image_transport="theora")


# --------------------------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FORMATS = (
    "rgb8; jpeg compressed bgr8",
    "rgb8; png compressed bgr8",
    "mono16; png compressed ",
    "bayer_rggb8; png compressed ",
    "jpeg",
    "png",
    "",
    "16UC1; compressedDepth png",
    "rgb8; tiff compressed bgr8",
    "yuv422; png compressed ",
)
# what imdecode reads besides JPEG and PNG (it goes by the file signature, not by `format`),
# including float pixels (Radiance HDR, PFM) a camera image never has
OTHER_CODECS = (".bmp", ".ppm", ".pgm", ".tiff", ".webp", ".hdr", ".pfm")


@st.composite
def payloads(draw: st.DrawFn) -> np.ndarray:
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    channels = draw(st.sampled_from([1, 3, 4]))
    ext = draw(st.sampled_from((".png", ".jpg", *OTHER_CODECS)))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pixels = (rng.random((h, w, channels)) * 255).astype(dtype)
    ok, data = False, None
    try:
        ok, data = cv2.imencode(ext, pixels if channels > 1 else pixels[..., 0])
    except cv2.error:
        pass
    data = data.reshape(-1) if ok else np.frombuffer(draw(st.binary(max_size=64)), np.uint8)
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "garbage"]))
    data = data.copy()
    if damage == "truncate" and data.size:
        data = data[: draw(st.integers(0, data.size - 1))]
    elif damage == "flip" and data.size:
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, data.size - 1))] ^= draw(st.integers(1, 255))
    elif damage == "garbage":
        data = np.frombuffer(draw(st.binary(max_size=200)), np.uint8)
    return data


@FUZZ
@given(
    data=payloads(),
    fmt=st.one_of(st.sampled_from(FORMATS), st.text(max_size=30)),
    bit_depth=st.sampled_from([0, 8, 12, 16]),
)
def test_any_compressed_payload_decodes_or_raises_a_documented_error(
    data: np.ndarray, fmt: str, bit_depth: int
) -> None:
    try:
        rgb = compressed_to_rgb(cmsg(fmt, data), bit_depth)
    except (EncodingError, MalformedImageError) as exc:
        assert str(exc)
        event(type(exc).__name__)
        return
    event("decoded")
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
    assert rgb.shape[0] > 0 and rgb.shape[1] > 0 and rgb.flags.c_contiguous
