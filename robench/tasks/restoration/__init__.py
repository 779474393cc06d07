"""Image restoration across degradation levels (DL-Net, arXiv 1904.09105): inpainting,
interpolation and super-resolution operators, their data, and the task protocol."""

_TASK = "restoration_spectrum"
_M = "robench.tasks.restoration.methods"

BUILTINS = [
    ("tasks", _TASK, "robench.tasks.restoration.task:RestorationSpectrumTask",
     "restoration across degradation levels (DL-Net): PSNR/SSIM over a level spectrum"),
    ("methods", "biharmonic", f"{_M}.classic:Biharmonic",
     "scikit-image biharmonic inpainting of the missing pixels (inpainting, interpolation)", _TASK),
    ("methods", "bicubic", f"{_M}.classic:Bicubic",
     "bicubic upsampling (super-resolution)", _TASK),
    ("methods", "base", f"{_M}.base_net:BaseNetwork",
     "network trained at the single training level (context encoder / VDSR)", _TASK),
    ("methods", "base+paste", f"{_M}.paste:BasePaste",
     "base output with the observed pixels pasted back (inpainting, interpolation)", _TASK),
    ("methods", "spectrum-ft", f"{_M}.spectrum_ft:SpectrumFineTune",
     "base fine-tuned on levels from the whole spectrum, no fidelity module (control)", _TASK),
    ("methods", "base-ft", f"{_M}.spectrum_ft:BaseFineTune",
     "base fine-tuned at its training level with the spectrum-ft budget (control for extra steps)", _TASK),
    ("methods", "dlnet", f"{_M}.dlnet:DLNet",
     "DL-Net: base + K unrolled fidelity steps on a late feature, fine-tuned end to end", _TASK),
    ("methods", "oracle", f"{_M}.oracle:Oracle",
     "a network trained at each test level (upper bound)", _TASK),
]
