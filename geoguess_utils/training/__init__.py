"""Training: the ``geoguess fit`` command line, callbacks, safe checkpoints, resumption and runs.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.training.callbacks import ...``; importing the package itself does nothing.

Modules:

- ``callbacks``: Callbacks of `geoguess fit`: what the data learns from the task, the split, the run
  checkpoint, epoch lines.
- ``cleanup``: Leave no empty ``runs/.../version_N`` folder behind when ``geoguess fit`` is refused
  before training.
- ``fit_guidance``: Short, actionable messages for ``geoguess fit``: its help summary, bad options,
  GPU and dataset errors.
- ``lightning_cli``: ``geoguess fit``: train a task with LightningCLI, then test its best
  checkpoint.
- ``moved_keys``: Tell users of an older config where its keys went, before LightningCLI parses it.
- ``resume``: Exact resumption of a killed training run: step seeds, step checkpoints, plateau
  catch-up.
- ``run_files``: The files of one training run folder: checkpoints, logs and the split.
"""
