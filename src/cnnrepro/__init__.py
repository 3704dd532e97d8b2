"""cnnrepro: the package behind the reproduction pipeline of five CNN studies.

Every stage is a plain function here; the Snakemake rules in ``workflow/`` only pass
paths and config slices into them.
"""

__version__ = "0.1.0"
