"""Scan geometry: the raster scan and its groups (:mod:`ptycho.geometry.raster`).

The lowest layer of the numpy side: it imports nothing from the project.
"""
