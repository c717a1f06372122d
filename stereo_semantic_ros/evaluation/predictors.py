"""What evaluation runs: :class:`Prediction`, the :class:`Predictor` protocol and our network as
one (:class:`PipelinePredictor`, through the shared :class:`~stereo_semantic_ros.pipeline.
StereoPipeline`, so the figures describe exactly what the node runs). The classical baselines
are in :mod:`stereo_semantic_ros.evaluation.baselines`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.pipeline import StereoPipeline

__all__ = ["PipelinePredictor", "Prediction", "Predictor"]


@dataclass
class Prediction:
    """What a predictor returns for one sample, at the sample's resolution.

    Attributes:
        disparity: (H, W) float pixels, package sign convention; non-finite or <= 0 means
            "no answer". None if the predictor does not estimate disparity.
        labels: (H, W) integer train ids of the evaluation label set (255 = no answer), or
            None if the predictor has no semantics.
        confidence: (H, W) stereo confidence in [0, 1] of an unmasked ``disparity``, or None
            (only asked for by ``--confidence-curve``).
    """

    disparity: np.ndarray | None
    labels: np.ndarray | None = None
    confidence: np.ndarray | None = None


@runtime_checkable
class Predictor(Protocol):
    """Anything with a ``name`` and ``predict(sample) -> Prediction``.

    Optional attributes: ``info`` (a JSON-able dict recorded in the report) and ``label_set``
    (checked against the evaluation's label set).
    """

    name: str

    def predict(self, sample: StereoSample) -> Prediction: ...


class PipelinePredictor:
    """Our network, run by the shared :class:`StereoPipeline` exactly as the node runs it.

    Args:
        pipeline: a loaded pipeline (``StereoPipeline.from_checkpoint``).
        name: row name in the report.
        min_confidence: passed to ``StereoPipeline.run``; 0 keeps every pixel (dense output).
        confidence: also return the stereo confidence (for the confidence-vs-error curve).
    """

    def __init__(
        self,
        pipeline: StereoPipeline,
        *,
        name: str = "ours",
        min_confidence: float = 0.0,
        confidence: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.name = name
        self.min_confidence = float(min_confidence)
        wanted = (("disparity", "disparity"), ("labels", "segmentation"))
        if confidence:
            wanted += (("confidence", "disparity"),)
        self._outputs = tuple(out for out, task in wanted if task in pipeline.tasks)

    @property
    def label_set(self) -> LabelSet:
        return self.pipeline.label_set

    @property
    def info(self) -> dict[str, Any]:
        pipe = self.pipeline
        return {
            "algorithm": "StereoPipeline",
            "architecture": type(pipe.model).__name__,
            "outputs": list(self._outputs),
            "device": str(pipe.device),
            "precision": pipe.precision,
            "input_scale": pipe.input_scale,
            "min_confidence": self.min_confidence,
        }

    def predict(self, sample: StereoSample) -> Prediction:
        result = self.pipeline.run(
            sample.left,
            sample.right,
            sample.calib,
            outputs=self._outputs,
            min_confidence=self.min_confidence,
        )
        return Prediction(result.disparity, result.labels, result.confidence)
