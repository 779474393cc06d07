"""What every Dask worker of a robench run gets (imported only with ``--executor dask``).

Only the adapter that ``distributed`` requires lives here (a :class:`WorkerPlugin`
subclass, in a module that may import ``distributed``); what a worker sets up is
:func:`robench.executors.setup_dask_worker`, which the driver hands to the plug-in, so this
module imports nothing of robench (executors imports it, not the other way round).
"""

from __future__ import annotations

from typing import Callable

from distributed import WorkerPlugin


class RobenchWorkerPlugin(WorkerPlugin):
    """Runs ``setup`` (a picklable callable: a module-level function or a partial of one) on
    every worker, restarted ones included: the driver's ``--plugin`` files and the torch
    thread count (:func:`robench.executors.setup_dask_worker`)."""

    def __init__(self, setup: Callable[[], None]):
        self.setup_worker = setup

    def setup(self, worker=None):
        self.setup_worker()
