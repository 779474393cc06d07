"""Reference methods of the ``restoration_spectrum`` task, one file each (see ``base.py``
for the contract): biharmonic/bicubic (classic), base, base+paste, spectrum-ft, dlnet, oracle."""
