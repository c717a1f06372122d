"""``stereo-semantic-replay`` and ``python -m stereo_semantic_ros.bagtools.replay``.

Kept where the console script, the README and scripts call it; the code is
:mod:`stereo_semantic_ros.replay`.
"""

import sys

from stereo_semantic_ros.replay.cli import (
    EXIT_NOTHING_PROCESSED,
    EXIT_STRICT_FAILED,
    main,
    run_replay,
)

__all__ = ["EXIT_NOTHING_PROCESSED", "EXIT_STRICT_FAILED", "main", "run_replay"]

if __name__ == "__main__":
    sys.exit(main())
