"""Data: the LUMEN layout, reading and validation, images and caches, splits, Dataset and DataModule.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.data.augment import ...``; importing the package itself does nothing.

Modules:

- ``augment``: Training-time image augmentation of the four views.
- ``datamodule``: The LightningDataModule: roots -> validated table -> splits -> context -> loaders.
- ``enrich``: The enriched locations table (projected, scaled, classed), cached on disk.
- ``feature_source``: What the data module needs to serve cached backbone features instead of
  images.
- ``geodataset``: The Dataset: one location's four views and its targets as a dict sample.
- ``images``: Fast image loading: JPEG decode with DCT scaling, and a pre-resized uint8 cache.
- ``layout``: The LUMEN dataset layout in one place: file and folder names, headings, CSV columns.
- ``loading``: Load LUMEN roots into one validated table of locations.
- ``provenance``: Where a dataset root comes from: a synthetic sample or real photos (its
  ``data.csv`` says).
- ``reader``: Read the pieces of a LUMEN root: its data.csv, its image folder, a location's view
  files.
- ``sampling``: Deterministic, resumable sampling: a per-epoch sampler and a loader that can resume
  mid-epoch.
- ``settings``: Grouped settings of the GeoDataModule: cells, split, reading, caching and loading.
- ``splits``: Seeded, leak-free train/val/test splits, saved next to a run.
- ``validation``: Validate LUMEN dataset roots: every problem named by file, line and uuid.
"""
