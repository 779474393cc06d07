"""Task ``corruption_robustness``: how much accuracy does a (compressed, robustly trained,
restored) classifier keep on natural corruptions at increasing severity? MNIST-C for grey
digits, CIFAR-10-C / ImageNet-C for RGB images, generated from the clean test set with
seeded randomness and cached; mean corruption error against a named reference model
(Hendrycks & Dietterich 2019; Mu & Gilmer 2019).

``task.py`` holds the protocol; ``corruptions/`` the corruption families; ``metrics.py``
the corruption errors; ``restore.py`` the restore-then-classify step; ``methods/base.py``
says where the methods come from (the ``compression`` task's, through ``methods_from``).
"""
