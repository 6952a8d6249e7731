"""Producers of datasets in the LUMEN layout: the synthetic generator and the Street View and Mapillary downloaders.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.datasets.download_driver import ...``; importing the package itself does nothing.

Modules:

- ``download_driver``: The resumable loop behind every dataset downloader (Street View, Mapillary).
- ``http_retry``: Retrying HTTP GETs for the downloaders: rate limit, backoff, Retry-After, and the
  two failure kinds.
- ``mapillary``: Build a LUMEN dataset from Mapillary's openly licensed 360° panoramas.
- ``mapillary_records``: The records of a Mapillary download: sampled points, API answers, data.csv
  rows and attribution.
- ``panorama``: Equirectangular 360° panoramas and the square perspective views cut from them.
- ``streetview``: Collect a real dataset from Google Street View with the user's own API key.
- ``streetview_checks``: What the Street View downloader checks before a view or a row is kept.
- ``synthetic/``: Procedural Croatia: a deterministic, clearly labelled synthetic dataset (scene,
  render, write).
"""
