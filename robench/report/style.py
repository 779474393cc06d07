"""One colour per method, on every page, panel and figure.

A method keeps its colour wherever it appears: the leaderboard's plots, the index and
every paper figure call :func:`method_colors`. Built-in methods have fixed colours,
chosen so the methods of one task are distinct (a colour-blind-safe palette, the
references in greys); a method the table does not know gets a free colour picked by a
stable hash of its name. Labels of one method's configurations (``dns(c=...)``,
``magnitude (layer)``, ``sketch, refined``, ``magnitude @ sparsity=0.9``) share the
method's colour; :func:`method_markers` tells configurations apart.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

# A colour-blind-safe palette (seaborn "colorblind" and "dark"), most distinct first.
PALETTE = ("#0173b2", "#d55e00", "#029e73", "#de8f05", "#cc78bc", "#56b4e9", "#ca9161", "#591e71",
           "#b8850a", "#006374", "#8c0800", "#001c7f", "#a23582", "#12711c", "#fbafe4", "#592f0d")
REFERENCE = "#3c3c3c"  # the method every other is compared with (dense, vanilla, base)
NEUTRAL = "#949494"  # a floor or trivial baseline (random, prior)

# Built-in methods of every task; equal names across tasks are the same colour.
KNOWN = {
    # compression (and sparsity_robustness, which takes compression's methods)
    "dense": REFERENCE, "random": NEUTRAL, "magnitude": "#0173b2", "dns": "#d55e00", "dns-target": "#a23582",
    "dns-nosplice": "#de8f05", "inq": "#029e73", "inq-oneshot": "#56b4e9", "uniform": "#ca9161",
    "sketch": "#cc78bc", "bwn": "#591e71", "sign": "#b8850a", "dns+inq": "#8c0800", "pipeline": "#006374",
    # robust_training
    "vanilla": REFERENCE, "deepdefense": "#d55e00", "adv-fgs": "#0173b2", "adv-pgd": "#001c7f",
    "parseval": "#029e73",
    # room_layout
    "st-pio": "#d55e00", "fcn": "#0173b2", "geometric": "#029e73", "prior": NEUTRAL,
    # restoration_spectrum
    "base": REFERENCE, "base+paste": NEUTRAL, "base-ft": "#56b4e9", "spectrum-ft": "#0173b2",
    "dlnet": "#d55e00", "oracle": "#029e73", "biharmonic": "#cc78bc", "bicubic": "#ca9161",
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*", "d", "H", "8")

_BASE = re.compile(r"^\s*([^\s(@,]+)")


def base_method(label: object) -> str:
    """The method name a configuration label starts with: ``dns(c=[1, 3])`` → ``dns``,
    ``magnitude (layer)`` → ``magnitude``, ``sketch, refined`` → ``sketch``."""
    match = _BASE.match(str(label))
    return match.group(1) if match else str(label)


def _hashed(name: str, taken: set[str]) -> str:
    start = int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16) % len(PALETTE)
    for i in range(len(PALETTE)):
        colour = PALETTE[(start + i) % len(PALETTE)]
        if colour not in taken:
            return colour
    return PALETTE[start]


def method_colors(labels: Iterable[object]) -> dict[str, str]:
    """Label → hex colour: the colour of the label's method (:func:`base_method`); methods
    not in :data:`KNOWN` get a colour no other method of ``labels`` has, when one is left."""
    labels = [str(v) for v in dict.fromkeys(labels)]
    bases = list(dict.fromkeys(base_method(v) for v in labels))
    colours = {b: KNOWN[b] for b in bases if b in KNOWN}
    taken = set(colours.values())
    for b in sorted(b for b in bases if b not in colours):
        colours[b] = _hashed(b, taken)
        taken.add(colours[b])
    return {label: colours[base_method(label)] for label in labels}


def method_markers(labels: Iterable[object]) -> dict[str, str]:
    """Label → matplotlib marker: the configurations of one method get different markers,
    in the order given."""
    seen: dict[str, int] = {}
    out = {}
    for label in dict.fromkeys(str(v) for v in labels):
        base = base_method(label)
        out[label] = MARKERS[seen.get(base, 0) % len(MARKERS)]
        seen[base] = seen.get(base, 0) + 1
    return out
