"""The one inference loop: ``Trainer.predict`` over a module's ``predict_step``."""

from __future__ import annotations

from typing import Any

import numpy as np

from geoguess_utils.errors import ConfigError


def run_predict(
    task: Any,
    loader: Any,
    device: str = "auto",
    progress: bool = False,
    callbacks: list[Any] | None = None,
    return_predictions: bool = True,
) -> dict[str, Any]:
    """Run ``task.predict_step`` over a loader with ``Trainer.predict``: the one inference path.

    Lightning places the model and batches on the device and runs in inference mode, so
    every caller (``geoguess predict``, ``geoguess map``, the notebooks, the embedding
    cache, the server's batch path) gets the same numbers.

    Args:
        task: A LightningModule with a ``predict_step``: a trained task (context and image size
            set), or the embedding cache's :class:`~geoguess_utils.embeddings.Embedder`.
        loader: A DataLoader, or a LightningDataModule with ``predict_roots``.
        device: ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        progress: Show Lightning's progress bar.
        callbacks: Extra Lightning callbacks, e.g. a prediction writer.
        return_predictions: Keep and return the outputs (off when a writer stores them).

    Raises:
        KeyboardInterrupt: Ctrl+C during the loop (Lightning would exit with status 1).

    Returns:
        ``{"uuid": list[str], "latlon": (N, 2) float64 degrees, "non_finite": (N,) bool}``
        plus the task's extras (``"probabilities"``, (N, K), for a classifier), concatenated
        in loader order (see :meth:`geoguess_utils.tasks.base.GeoTask.predict_step`).
    """
    import logging
    import signal

    import pytorch_lightning as pl
    import torch

    accelerator, devices = _accelerator(device)
    quiet = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)  # no "GPU available" banner per call
    try:
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=devices,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            callbacks=callbacks,
        )
        source = {"datamodule": loader} if isinstance(loader, pl.LightningDataModule) else {"dataloaders": loader}
        handler = signal.getsignal(signal.SIGINT)
        try:
            batches = trainer.predict(task.eval(), return_predictions=return_predictions, **source)
        except SystemExit:
            # Lightning answers Ctrl+C with exit(1), which reads as "done, problems found":
            # say it was an interruption, so the command exits 130 with its one line
            if not trainer.interrupted:
                raise
            signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl+C from here on
            raise KeyboardInterrupt from None
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    batches = batches or []
    merged: dict[str, Any] = {"uuid": [u for b in batches for u in b["uuid"]]}
    keys = [k for k in (batches[0] if batches else {"latlon": None}) if k != "uuid"]
    for key in keys:
        parts = [b[key].detach().cpu() for b in batches]
        parts = [p if p.dtype == torch.bool else p.to(torch.float64) for p in parts]
        merged[key] = torch.cat(parts).numpy() if parts else np.empty((0, 2))
    return merged


def _accelerator(device: str) -> tuple[str, Any]:
    """``"auto"``/``"cpu"``/``"cuda"``/``"cuda:N"`` -> Lightning's ``(accelerator, devices)``."""
    if device == "auto":
        import torch

        return ("gpu", 1) if torch.cuda.is_available() else ("cpu", 1)
    if device == "cpu":
        return "cpu", 1
    if device == "cuda":
        return "gpu", 1
    if device.startswith("cuda:") and device[5:].isdigit():
        return "gpu", [int(device[5:])]
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
