"""Synthetic FACS v2: ICT-FaceKit-driven warps of real neutral photos with exact AU labels.

One module per job: ``model`` (load the MIT ICT-FaceKit light model), ``facs`` (AU -> ICT shapes,
intensities, labels, expression prototypes), ``mesh68`` (runtime face mesh -> 68 points),
``projection`` (fit the model to a photo), ``field`` (dense maps and their inverse),
``appearance`` (wrinkles, cheek shading, mouth cavity and teeth), ``render`` (one warp) and
``batch`` (seeded renders over folders of neutral photos); ``python -m train.data.ict.sheet``
writes a contact sheet to look at.
"""
from train.data.ict.render import Render, render, render_full

__all__ = ["Render", "render", "render_full"]
