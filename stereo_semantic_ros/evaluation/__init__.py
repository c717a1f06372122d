"""Evaluation: predictors, the one scorer, the loop, pictures, the report and the CLI.

* :mod:`~stereo_semantic_ros.evaluation.predictors`: ``Prediction``, the ``Predictor`` protocol,
  ``PipelinePredictor`` (our network through the shared pipeline, as the node runs it);
* :mod:`~stereo_semantic_ros.evaluation.baselines`: OpenCV StereoSGBM set up as
  ``stereo_image_proc`` sets it up, and its hole-filled variant;
* :mod:`~stereo_semantic_ros.evaluation.scorer`: ``Scorer`` and ``GroundTruth``, used by the
  eval CLI, replay's ground-truth scores and training validation;
* :mod:`~stereo_semantic_ros.evaluation.runner`: ``evaluate`` (predictors over a split);
* :mod:`~stereo_semantic_ros.evaluation.pictures`, :mod:`~stereo_semantic_ros.evaluation.report`:
  tiled PNGs, tables, ``metrics.md`` and strict JSON;
* :mod:`~stereo_semantic_ros.evaluation.cli`: ``stereo-semantic-eval``.

The package imports nothing itself; import the module you need.
"""
