"""Serve: the ``geoguess serve`` inference service and its "where is this?" page.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.serve.app import ...``; importing the package itself does nothing.

Modules:

- ``app``: The FastAPI application: health, model list, predictions, the sample and the page.
- ``batcher``: Gather requests that arrive together into one forward pass, with a bounded queue.
- ``errors``: Every failure as a JSON error body; internal errors logged with an id and never shown.
- ``loadtest``: Start a real ``geoguess serve`` process and put a bounded load on it.
- ``predictor``: One forward pass for a batch of locations, through the task's own ``predict_step``.
- ``registry``: The models a server may use: the checkpoint files directly inside one folder.
- ``sample``: A dataset root the page can draw random locations from ("a random synthetic
  location").
- ``schemas``: Response models of the inference service (they shape the OpenAPI document at
  ``/docs``).
- ``uploads``: Uploaded photos -> the pixels the model takes, through the data pipeline's own
  decoder.
"""
