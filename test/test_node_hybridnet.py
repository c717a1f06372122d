"""The live node with ``config/hybridnet.yaml`` and its shipped weights, over real DDS.

A single-image network must publish every output with the stereo networks' conventions: the
disparity is fx * B / depth, its DisparityImage range is max_disparity, its confidence is 1.0.
Checked on 64x32 frames (fx = 50 px, B = 0.1 m).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from node_harness import (
    BASELINE,
    FX,
    LEFT_FRAME,
    Driver,
    NodeProcess,
    cloud_array,
    image_array,
)

from stereo_semantic_ros.labels import CITYSCAPES_19

DOMAIN_ID = 56
WEIGHTS_MAX_DISPARITY = 64  # models/hybridnet_synthetic.pt


@pytest.fixture(scope="module")
def live(
    colcon_build: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NodeProcess, Driver]]:
    prefix = colcon_build.require_success()
    log = tmp_path_factory.mktemp("node_hybridnet") / "node.log"
    node = NodeProcess(
        prefix,
        colcon_build.site_packages(),
        DOMAIN_ID,
        log,
        params_file="hybridnet.yaml",
        untrained=False,  # the file's own weights: models/hybridnet_synthetic.pt
    )
    driver = None
    try:
        driver = Driver(DOMAIN_ID, node.text)
        driver.wait_for(driver.latest_diagnostics, 90, "the node's first /diagnostics")
        driver.subscribe_outputs()
        yield node, driver
    finally:
        if driver is not None:
            driver.close()
        node.stop()


def test_hybridnet_node_loads_its_weights_and_publishes_every_output(live) -> None:
    node, driver = live
    diagnostics = driver.latest_diagnostics()
    assert diagnostics["architecture"] == "hybridnet"
    assert diagnostics["weights"].endswith("models/hybridnet_synthetic.pt")
    assert "UNTRAINED" not in node.text()

    frame = driver.warm_up()
    out = driver.wait_outputs(frame.stamp_ns)
    for topic, msg in out.items():
        assert msg.header.stamp == frame.left.header.stamp, topic
        assert msg.header.frame_id == LEFT_FRAME, topic

    disp_msg = out["disparity"]
    assert (disp_msg.image.height, disp_msg.image.width) == (frame.height, frame.width)
    assert disp_msg.f == pytest.approx(FX) and disp_msg.t == pytest.approx(BASELINE)
    assert disp_msg.max_disparity == float(WEIGHTS_MAX_DISPARITY)
    disparity = image_array(disp_msg.image)
    valid = disparity >= 0
    assert valid.any() and disparity[valid].max() <= WEIGHTS_MAX_DISPARITY
    depth = image_array(out["depth"])
    np.testing.assert_allclose(disparity[valid], FX * BASELINE / depth[valid], rtol=1e-5)
    assert np.isnan(depth[~valid]).all()

    labels = image_array(out["semantic/labels"])
    assert labels.shape == (frame.height, frame.width)
    assert labels.max() < CITYSCAPES_19.num_classes
    cloud = cloud_array(out["points2"])
    assert cloud.shape == (frame.height, frame.width)
    finite = np.isfinite(cloud["z"])
    assert finite.any()
    np.testing.assert_array_equal(cloud["label"][finite], labels[finite])
