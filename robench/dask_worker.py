"""What every Dask worker of a robench run gets (imported only with ``--executor dask``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from distributed import WorkerPlugin


class RobenchWorkerPlugin(WorkerPlugin):
    """Set up on every worker, restarted ones included: the driver's ``--plugin`` files,
    written to the worker and registered there, and the worker's torch thread count."""

    def __init__(self, plugin_sources: dict[str, str], threads: int | None):
        # file name -> source text
        self.plugin_sources = plugin_sources
        self.threads = threads

    def setup(self, worker=None):
        from robench import registry
        from robench.executors import _set_threads

        if self.threads:
            import robench.executors
            robench.executors._worker_threads = self.threads
            _set_threads(self.threads)
        folder = Path(tempfile.mkdtemp(prefix="robench-plugins-"))
        paths = []
        for i, (name, source) in enumerate(self.plugin_sources.items()):
            path = folder / str(i) / name  # the file's own name: its module name follows from it
            path.parent.mkdir()
            path.write_text(source, encoding="utf-8")
            paths.append(str(path))
        registry.setup(tuple(paths))
