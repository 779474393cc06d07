"""Task ``compression``: prune, quantize or sketch a trained classifier, fine-tune it with a
fixed budget, and measure accuracy against parameter/FLOP/storage compression and CPU latency.

``task.py`` holds the protocol, ``metrics.py`` the counting, storage and timing helpers,
``methods/`` the method contract (``base.py``) and the reference plug-ins, one file each:
dense, random, magnitude, dns, dns-nosplice and dns-target (DNS to an exact sparsity), inq and inq-oneshot, uniform, sketch
(with bwn and sign; its associative binary layers in ``methods/_associative.py``), and
pipeline with its dns+inq preset.
"""
