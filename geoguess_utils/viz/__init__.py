"""Figures, by what they show: maps of cells and locations, photos, errors, curves and the web map.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.viz.ablation_plots import ...``; importing the package itself does nothing.

Modules:

- ``ablation_plots``: The ablation as a figure: each variant's test mean error against the 2022
  recipe's.
- ``basemap``: The base of every static map: Croatia's outline on matplotlib axes, and saving
  figures.
- ``cell_maps``: Static maps of cells: the grid, its progression, spacings, centroid kinds, error
  floor.
- ``error_plots``: Figures of prediction errors: their distribution and their mean per cell.
- ``label_smoothing``: Haversine label smoothing, drawn: the soft targets around one location over
  the grid cells.
- ``location_maps``: Maps of locations and their density per cell, and of the synthetic generator's
  densities.
- ``photos``: Figures of the pictures themselves: one location's four views, quadruplets side by
  side.
- ``place_names``: Names of points and cells that a reader can place: the nearest town, its distance
  and direction.
- ``prediction_map``: The interactive map of a set of predictions (what `geoguess map` writes and
  notebook 05 shows).
- ``projection_maps``: Figures of the projection chapter: distance errors and scale error.
- ``reliability``: Reliability diagrams: how often the top cell is right against how sure the
  model said it was.
- ``scheme_maps``: Maps of cell schemes side by side: each scheme's cells, class points and training
  locations.
- ``training_curves``: Training curves from a run's logged metrics.
- ``webmap``: Interactive map of predictions: a standalone folium (Leaflet) HTML page.
- ``webmap_html``: HTML pieces of the web map: escaping, thumbnails, embedded assets, legend and
  popups.
"""
