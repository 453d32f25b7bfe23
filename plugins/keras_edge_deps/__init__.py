"""DεpS once-for-all training for keras-edge.

Elastic supernet, DεpS / BigNAS / OFA samplers, Pareto evaluation and subnet search.
"""
