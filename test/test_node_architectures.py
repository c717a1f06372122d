"""The live node with each of the five parameter files and its shipped weights, over DDS.

``config/esp_joint.yaml`` (the default) and ``config/corr_mtl.yaml`` (stereo),
``config/hybridnet.yaml``, ``config/pseudo_mtl.yaml`` and ``config/synchronized.yaml`` (single
image: disparity = fx * B / depth), started as a user would, must publish every output with the
same conventions. Checked on 64x32 frames (fx = 50 px, B = 0.1 m).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pytest
from node_harness import BASELINE, FX, LEFT_FRAME, Driver, NodeProcess, cloud_array, image_array

from stereo_semantic_ros.labels import CITYSCAPES_19


class Case(NamedTuple):
    architecture: str
    weights: str  # what config/<architecture>.yaml names
    domain_id: int
    max_disparity: int  # of the shipped weights


CASES = (
    Case("esp_joint", "esp_joint_mixed.pt", 133, 96),
    Case("corr_mtl", "corr_mtl_mixed.pt", 55, 96),
    Case("hybridnet", "hybridnet_synthetic.pt", 56, 64),
    Case("pseudo_mtl", "pseudo_mtl_synthetic.pt", 131, 64),
    Case("synchronized", "synchronized_synthetic.pt", 132, 64),
)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.architecture)
def live(
    request: pytest.FixtureRequest, colcon_build: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Case, NodeProcess, Driver]]:
    case: Case = request.param
    prefix = colcon_build.require_success()
    log = tmp_path_factory.mktemp(f"node_{case.architecture}") / "node.log"
    node = NodeProcess(
        prefix,
        colcon_build.site_packages(),
        case.domain_id,
        log,
        params_file=f"{case.architecture}.yaml",
        untrained=False,  # the file's own weights: models/<case.weights>
    )
    driver = None
    try:
        driver = Driver(case.domain_id, node.text)
        driver.wait_for(driver.latest_diagnostics, 90, "the node's first /diagnostics")
        driver.subscribe_outputs()
        yield case, node, driver
    finally:
        if driver is not None:
            driver.close()
        node.stop()


def test_node_loads_the_files_weights_and_publishes_every_output(live) -> None:
    case, node, driver = live
    diagnostics = driver.latest_diagnostics()
    assert diagnostics["architecture"] == case.architecture
    assert diagnostics["weights"].endswith(f"models/{case.weights}")
    assert "UNTRAINED" not in node.text()

    frame = driver.warm_up()
    out = driver.wait_outputs(frame.stamp_ns)
    for topic, msg in out.items():
        assert msg.header.stamp == frame.left.header.stamp, topic
        assert msg.header.frame_id == LEFT_FRAME, topic

    disp_msg = out["disparity"]
    assert (disp_msg.image.height, disp_msg.image.width) == (frame.height, frame.width)
    assert disp_msg.f == pytest.approx(FX) and disp_msg.t == pytest.approx(BASELINE)
    assert disp_msg.max_disparity == float(case.max_disparity)
    disparity = image_array(disp_msg.image)
    valid = disparity >= 0
    assert valid.any() and disparity[valid].max() <= case.max_disparity
    depth = image_array(out["depth/image_rect"])
    np.testing.assert_allclose(depth[valid], FX * BASELINE / disparity[valid], rtol=1e-5)
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
