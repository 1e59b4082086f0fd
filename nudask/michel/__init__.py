"""The "Find Michels" task: find the voxels of Michel electrons in 3-D voxel images.

``python -m nudask.michel``: ``baseline`` (DBSCAN), ``train`` (a point-based per-voxel
network), ``solve`` (inference as Dask tasks into a solution file), ``score`` (F1 over voxels)
and ``spectrum`` (toy Monte Carlo of the Michel spectrum against labelled clusters). The
solution file holds, per image, the rows of the Michel voxels in the original file; a
dataset's ``row`` channel gives them whatever the storage order.
"""

from __future__ import annotations

MICHEL = 2  # the label of a Michel electron voxel
CLASSES = ("shower", "track", "michel", "delta", "scatter")
