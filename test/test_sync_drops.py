"""The drop classifier shared by the node and replay names the right reason for each loss."""

from types import SimpleNamespace

from stereo_semantic_ros.frames.inputs import Input
from stereo_semantic_ros.frames.sync_drops import SyncDropClassifier
from stereo_semantic_ros.sync import Synchronizer

LEFT, RIGHT, LEFT_INFO, RIGHT_INFO = (
    Input.LEFT_IMAGE,
    Input.RIGHT_IMAGE,
    Input.LEFT_INFO,
    Input.RIGHT_INFO,
)

NAMES = ("left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info")


def msg(stamp_ns: int):
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=stamp_ns)))


def feed(events, approximate=False):
    drops = []
    classifier = SyncDropClassifier(
        NAMES,
        lambda r, s, d: drops.append((r, s, d)),
        approximate=approximate,
        slop=0.005,
        queue_size=5,
    )
    sets = []
    sync = Synchronizer(
        4,
        lambda *m: sets.append(m),
        queue_size=5,
        slop=0.005,
        approximate=approximate,
        on_drop=classifier,
    )
    for index, stamp in events:
        classifier.seen_message(index, stamp)
        sync.add(index, msg(stamp), stamp)
    return drops, sets


def full(stamp):
    return [(LEFT, stamp), (RIGHT, stamp), (LEFT_INFO, stamp), (RIGHT_INFO, stamp)]


def test_missing_camera_info_is_named():
    drops, sets = feed([(LEFT, 100), (RIGHT, 100), *full(200)])
    assert len(sets) == 1
    # one report per image; the caller counts the frame once per stamp
    assert [d[:2] for d in drops] == [("no_camera_info", 100)] * 2
    assert "no left/camera_info and no right/camera_info" in drops[0][2]


def test_missing_partner_and_stale_stamp():
    drops, _ = feed([(LEFT, 100), (LEFT_INFO, 100), (RIGHT_INFO, 100), *full(200), (LEFT, 150)])
    assert [d[0] for d in drops] == ["no_partner", "stale_stamp"]
    assert "had no right/image_rect with the same stamp (the nearest" in drops[0][2]
    assert "older than the last processed set" in drops[1][2]


def test_approximate_partner_hint_gives_the_nearest_stamp():
    drops, sets = feed([(RIGHT, 1_000_000), (LEFT, 50_000_000), *full(100_000_000)], True)
    assert len(sets) == 1
    reasons = {d[0] for d in drops}
    assert reasons == {"no_partner"}
    assert any("differs by" in d[2] and "within sync_slop" in d[2] for d in drops)
