"""Task ``restoration_spectrum`` (DL-Net, arXiv 1904.09105): image restoration across
degradation levels. ``task.py`` is the protocol, ``metrics.py`` its scoring,
``networks.py`` the shared reference networks (specs, training, cache) built from
``architectures.py``, ``degradations.py`` the operators, ``data.py`` the images, and
``methods/`` the reference methods."""
