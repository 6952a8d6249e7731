"""Glue that only the course notebooks use: paths, measurements, exploration and the course map.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.course.ablation import ...``; importing the package itself does nothing.

Modules:

- ``ablation``: The measured ablation (``benchmarks/ablation.py``) as the course reads it: settings
  and summary table.
- ``beyond``: Notebook 06's plumbing: cached split features, heads trained and scored from them,
  the results table and the attention figure.
- ``analysis``: Measurements behind the course's chapters on distances, projections and the grid.
- ``exploration``: Looking at a dataset: its layout, a location's views, density, a faulty copy; the
  synthetic densities.
- ``figures``: Refresh the README's figures from what the notebooks last wrote.
- ``output``: What the notebooks print: the same quiet output as the ``geoguess`` commands, for a
  whole session.
- ``runs``: Training runs for the course: configs, run folders, training or reusing a run, its logs.
- ``service``: Notebook 07's server: ``geoguess serve`` started on 127.0.0.1 and always stopped by
  its PID, and one answer drawn on a map.
- ``schemes``: Cell schemes side by side: how many classes, how full they are, and their error
  floor.
- ``workspace``: Where the course finds its project folder, its figures and its data.
"""
