"""Lightning tasks: the shared base, classification and regression, decodings, metrics and loading.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.tasks.base import ...``; importing the package itself does nothing.

Modules:

- ``base``: GeoTask: the Lightning machinery shared by every task.
- ``calibration``: Honest confidence: temperature scaling, calibration error and split-conformal
  search regions.
- ``classification``: Classify a location into the context's cells (cross-entropy).
- ``data_link``: The one thing a task tells the data it trains on: how to normalise the views for
  its backbone.
- ``decoding``: Decodings: how class probabilities become one point, and keeping points on land.
- ``experimental/``: Tasks that were measured and did not beat the classifier on this project's
  data.
- ``loading``: Rebuild a trained task from its checkpoint file alone, ready for prediction.
- ``metrics``: Great-circle error metrics as a torchmetrics Metric.
- ``regions``: Search regions of predictions: the cells (or the disc) that hold the truth with a
  chosen probability.
- ``registry``: The one list of tasks: the name stored in checkpoints -> the task class.
- ``regression``: Regress a location's min-max scaled projected (x, y).
"""
