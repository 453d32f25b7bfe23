"""``python -m keras_edge`` is the ``keras-edge`` command."""

import os
import sys

# ``python -m`` puts the working folder first on sys.path, so a run or data folder holding
# e.g. ``keras.py`` would be imported instead of the real package: take it off.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from keras_edge.cli import main  # noqa: E402

main()
