"""Procedural Croatia: a deterministic, clearly labelled synthetic dataset (scene, render, write).

Import what you need from the module that defines it, e.g.
``from geoguess_utils.datasets.synthetic.density import ...``; importing the package itself does nothing.

Modules:

- ``density``: Where synthetic locations are drawn: uniformly by area, or with the uneven density of
  real coverage.
- ``panorama``: A 360° equirectangular panorama of a synthetic location.
- ``render``: Draw one synthetic view from its scene description.
- ``scene``: What stands around a synthetic location: zone, sea, peaks and settlements.
- ``styles``: How each landscape zone of procedural Croatia looks: colours and densities.
- ``write``: Write the synthetic dataset in the LUMEN layout, in parallel and deterministically.
"""
