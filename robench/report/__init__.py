"""Reports built from the results table only: the static leaderboard site and plots.

Importing this package is cheap: pandas, Jinja2, matplotlib and seaborn are imported
inside the functions that need them.
"""

from .leaderboard import format_number, metric_order, summarize_configs, write_leaderboard
from .plots import TASK_PLOTS, scatter_tradeoff, tradeoff_points

__all__ = ["TASK_PLOTS", "format_number", "metric_order", "scatter_tradeoff", "summarize_configs",
           "tradeoff_points", "write_leaderboard"]
