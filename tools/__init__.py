"""Repository tools run from the checkout (not installed with the package):
``python -m tools.layout_report`` (the package's shape figures) and
``python -m tools.reproducibility_digests`` (bit-for-bit digests of tiny runs)."""
