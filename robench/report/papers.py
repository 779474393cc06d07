"""Published numbers shown beside ours, each with its place in the paper.

The one home of every number a report quotes from a paper: the value, its unit, what it
measures, and where it is printed (table or figure, and row). ``checked`` says whether the
number was compared with that table by the robench authors; a report marks the others
"not checked against the paper". Reports cite the paper (:data:`PAPERS`), never a file
outside the project.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    short: str  # how a citation names it: "DNS"
    authors: str
    title: str
    venue: str
    arxiv: str

    @property
    def citation(self) -> str:
        return f"{self.authors}, “{self.title}”, {self.venue}, arXiv:{self.arxiv}"


@dataclass(frozen=True)
class Number:
    """One published number: ``value`` in ``unit`` measures ``what``; ``source``: the table
    or figure and row of ``paper`` it is printed in."""
    paper: str
    key: str
    value: float
    unit: str
    what: str
    source: str
    checked: bool = False

    @property
    def cite(self) -> str:
        """"(DNS, Table 1, row LeNet-5)", with the unchecked mark when it applies."""
        mark = "" if self.checked else "; not checked against the paper"
        return f"({PAPERS[self.paper].short}, {self.source}{mark})"


PAPERS = {
    "dns": Paper("DNS", "Y. Guo et al.", "Dynamic Network Surgery for Efficient DNNs", "NIPS 2016", "1608.04493"),
    "inq": Paper("INQ", "A. Zhou et al.", "Incremental Network Quantization: Towards Lossless CNNs with "
                 "Low-Precision Weights", "ICLR 2017", "1702.03044"),
    "sketching": Paper("Network Sketching", "Y. Guo et al.", "Network Sketching: Exploiting Binary Structure in "
                       "Deep CNNs", "CVPR 2017", "1706.02021"),
    "sparse-robustness": Paper("Sparse DNNs", "Y. Guo et al.", "Sparse DNNs with Improved Adversarial Robustness",
                               "NeurIPS 2018", "1810.09619"),
    "deepdefense": Paper("DeepDefense", "Z. Yan et al.", "Deep Defense: Training DNNs with Improved Adversarial "
                         "Robustness", "NeurIPS 2018", "1803.00404"),
    "dlnet": Paper("DL-Net", "Y. Guo et al.", "Deep Likelihood Network for Image Restoration with Multiple "
                   "Degradation Levels", "IEEE TIP", "1904.09105"),
    "stpio": Paper("ST-PIO", "H. Zhao et al.", "Physics Inspired Optimization on Semantic Transfer Features: An "
                   "Alternative Method for Room Layout Estimation", "CVPR 2017", "1707.00383"),
}

_NUMBERS = [
    # DNS, Table 1: parameters of LeNet-5 / LeNet-300-100 on MNIST before and after pruning
    Number("dns", "lenet-5.dense_error", 0.91, "%", "top-1 error of the dense LeNet-5 reference (MNIST)",
           "Table 1, row LeNet-5 reference"),
    Number("dns", "lenet-5.error", 0.91, "%", "top-1 error of LeNet-5 after DNS (MNIST)",
           "Table 1, row LeNet-5 pruned"),
    Number("dns", "lenet-5.ratio", 108, "×", "parameter compression of LeNet-5 by DNS",
           "Table 1, row LeNet-5 pruned"),
    Number("dns", "lenet-300-100.dense_error", 2.28, "%", "top-1 error of the dense LeNet-300-100 reference (MNIST)",
           "Table 1, row LeNet-300-100 reference"),
    Number("dns", "lenet-300-100.error", 1.99, "%", "top-1 error of LeNet-300-100 after DNS (MNIST)",
           "Table 1, row LeNet-300-100 pruned"),
    Number("dns", "lenet-300-100.ratio", 56, "×", "parameter compression of LeNet-300-100 by DNS",
           "Table 1, row LeNet-300-100 pruned"),
    Number("dns", "alexnet.ratio", 17.7, "×", "parameter compression of AlexNet by DNS (ImageNet, no accuracy loss)",
           "Table 1, row AlexNet pruned"),
    # INQ, Table 1: 5-bit INQ against the full-precision references on ImageNet (top-1 error)
    Number("inq", "resnet-18.float_error", 31.73, "%", "top-1 error of the float ResNet-18 (ImageNet)",
           "Table 1, row ResNet-18 ref."),
    Number("inq", "resnet-18.inq5_error", 31.02, "%", "top-1 error of 5-bit INQ ResNet-18 (ImageNet)",
           "Table 1, row ResNet-18 INQ"),
    Number("inq", "alexnet.float_error", 42.76, "%", "top-1 error of the float AlexNet (ImageNet)",
           "Table 1, row AlexNet ref."),
    Number("inq", "alexnet.inq5_error", 42.61, "%", "top-1 error of 5-bit INQ AlexNet (ImageNet)",
           "Table 1, row AlexNet INQ"),
    Number("inq", "alexnet.dns_inq_ratio", 53, "×", "storage compression of AlexNet by DNS followed by INQ",
           "Table 5, row DNS + INQ (AlexNet)"),
    # ST-PIO, pixel error (%) on LSUN validation and Hedau test, the comparison tables
    *[Number("stpio", f"{key}.{split}", value, "%", f"pixel error of {name} on {where}", f"{table}, row {name}")
      for key, name, lsun, hedau in (("hedau2009", "Hedau et al. 2009", 24.23, 21.20),
                                     ("mallya2015", "Mallya & Lazebnik 2015", 16.71, 12.83),
                                     ("delay2016", "DeLay 2016", 10.63, 9.73),
                                     ("cfile2016", "CFILE 2016", 7.57, 8.67),
                                     ("stpio2017", "ST-PIO 2017", 5.29, 6.60))
      for split, value, where, table in (("lsun", lsun, "LSUN validation", "Table 2 (LSUN)"),
                                         ("hedau", hedau, "Hedau test", "Table 3 (Hedau)"))],
]
NUMBERS: dict[tuple[str, str], Number] = {(n.paper, n.key): n for n in _NUMBERS}


def number(paper: str, key: str) -> Number:
    """The published number ``key`` of ``paper`` (KeyError names what is missing)."""
    try:
        return NUMBERS[(paper, key)]
    except KeyError:
        raise KeyError(f"no published number {key!r} of {paper!r} in robench.report.papers") from None


def value(paper: str, key: str) -> float:
    return number(paper, key).value


def sources_section(paper: str, keys: list[str] | None = None) -> list[str]:
    """Markdown lines: the paper's citation and, for each number quoted (``keys``, default
    all of the paper's), its value and where in the paper it is printed."""
    numbers = [n for n in _NUMBERS if n.paper == paper and (keys is None or n.key in keys)]
    lines = ["## Sources", "", f"- {PAPERS[paper].citation}."]
    for n in numbers:
        mark = "" if n.checked else " — not checked against the paper"
        lines.append(f"- {n.value:g}{n.unit}: {n.what}; {n.source}{mark}.")
    return lines + [""]
