"""robench: standardized, versioned benchmarks for robustness, compression and restoration.

The Python API mirrors the CLI::

    import robench
    robench.run("suites/smoke.yaml")          # run (resumes; stored runs are skipped)
    frame = robench.results()                 # pandas DataFrame, one row per run
    robench.leaderboard("leaderboards")       # static HTML site

Register your own method or model with the decorators re-exported here. Importing this
package is cheap: torch is imported only when something runs.
"""

import sys
import types

from robench.errors import UserError
from robench.registry import register_dataset, register_method, register_model, register_task

__version__ = "0.1.0"

_API = ("run", "results", "leaderboard", "figures", "validate", "load", "ls", "benchmark", "check", "check_model",
        "compare", "export", "import_bundle", "verify", "aggregate", "RunSummary")

__all__ = ["UserError", "register_dataset", "register_method", "register_model", "register_task",
           "__version__", *_API]


def __getattr__(name):
    if name in _API:
        from robench import api
        return getattr(api, name)
    raise AttributeError(f"module 'robench' has no attribute {name!r}")


class _Package(types.ModuleType):
    """``robench.check`` and ``robench.verify`` are API functions and also submodules: importing
    the submodule binds it as the package's attribute, which would shadow the function from
    then on (``robench.verify(...)``: "module object is not callable"). The API names always
    give the function; ``from robench.check import ...`` reads ``sys.modules`` and is unaffected."""

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if name in _API and isinstance(value, types.ModuleType):
            return __getattr__(name)  # the lazy re-export above
        return value


sys.modules[__name__].__class__ = _Package
