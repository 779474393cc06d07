"""Metrics shared by several tasks: pure functions over tensors or arrays, each tested
against an independent reference (scikit-image, scipy, ...)."""
