"""Task ``compression``: prune a trained classifier, fine-tune it with a fixed budget, and
measure accuracy against parameter/FLOP compression and CPU latency.

``task.py`` holds the protocol, ``metrics.py`` the counting and timing helpers,
``methods/`` the reference plug-ins (dense, random, magnitude, dns, dns-nosplice).
"""
