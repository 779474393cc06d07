"""Reports built from the results table only: the table helpers (``table``), the static
leaderboard site, plots and paper figures.

Importing this package is cheap: pandas, Jinja2, matplotlib and seaborn are imported
inside the functions that need them.
"""

from .leaderboard import format_number, metric_order, summarize_configs, write_leaderboard
from .plots import scatter_tradeoff, tradeoff_points

__all__ = ["format_number", "metric_order", "scatter_tradeoff", "summarize_configs", "tradeoff_points",
           "write_leaderboard"]
