"""``stereo-semantic-eval`` and ``python -m stereo_semantic_ros.evaluate``: the entry point only;
the evaluation lives in :mod:`stereo_semantic_ros.evaluation` (the CLI in its ``cli`` module)."""

from __future__ import annotations

import sys

from stereo_semantic_ros.evaluation.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
