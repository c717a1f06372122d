"""``python -m stereo_semantic_ros.replay``: the same as ``stereo-semantic-replay``."""

import sys

from stereo_semantic_ros.replay.cli import main

sys.exit(main())
