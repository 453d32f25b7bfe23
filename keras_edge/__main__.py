"""``python -m keras_edge`` is the ``keras-edge`` command."""

from keras_edge.cli import main

main()
