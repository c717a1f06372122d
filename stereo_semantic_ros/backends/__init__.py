"""Inference backends besides PyTorch: an exported ONNX graph run by onnxruntime.

The pipeline runs a network through the same call whatever the backend (``network(left,
right)`` -> dict of tensors, :mod:`~stereo_semantic_ros.networks.contract`), so pre- and
post-processing, and therefore every output, are shared: :class:`OnnxNetwork` is a
:class:`~stereo_semantic_ros.networks.contract.StereoNetwork` whose forward pass is an
onnxruntime session. The graph and its metadata are written by ``stereo-semantic-export``
(:mod:`stereo_semantic_ros.export`).
"""

from stereo_semantic_ros.backends.onnx import (
    BACKENDS,
    ONNX_FORMAT,
    OnnxModelError,
    OnnxNetwork,
    read_onnx_metadata,
)

__all__ = ["BACKENDS", "ONNX_FORMAT", "OnnxModelError", "OnnxNetwork", "read_onnx_metadata"]
