"""Piecewise-affine image warping over a fixed triangulation of control points.

The implementation is shared with the warp renderer of ``eapc generate``:
:class:`eapc_lightning.landmarks.mesh_warp.PiecewiseAffineWarp`.
"""

from eapc_lightning.landmarks.mesh_warp import PiecewiseAffineWarp

__all__ = ["PiecewiseAffineWarp"]
