"""NEq under a memory budget: velocity, random, Sparse Update and classifier-only selection.

Plugins (entry points in setup.cfg): ``neq_velocity``, ``neq_random``, ``sparse_update``
(with the ``keras-edge neq-search`` command) and ``classifier_only``. See README.md.
"""
