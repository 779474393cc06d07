"""Reference methods of the ``restoration_spectrum`` task, one file each (see ``base.py``
for the contract): biharmonic/bicubic (classic), base, base+paste, base-ft and
spectrum-ft (spectrum_ft.py), dlnet, oracle."""
