"""GeoTask: the Lightning machinery shared by every task."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from geoguess_utils import precision
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.checkpoints import record as ckpt_record
from geoguess_utils.errors import CheckpointError, ConfigError
from geoguess_utils.evaluation import MEAN_NAME
from geoguess_utils.models.efficientnet_lite import OFFLINE_BACKBONE
from geoguess_utils.models.multiview import MultiViewNet, Pooling
from geoguess_utils.tasks.calibration import Calibration
from geoguess_utils.tasks.decoding import clip_to_land
from geoguess_utils.tasks.freezing import FreezeEpochs, check_freeze_epochs, frozen_at
from geoguess_utils.tasks.metrics import HaversineMetrics
from geoguess_utils.tasks.optimization import OptimizerSettings, ScheduleSettings, configure_optimizers
from geoguess_utils.tasks.view_dropout import HEADING_KNOWN, VIEW_MASK, drop_views, hide_headings, views_present

MAX_ENSEMBLE = 16
"""Most members an ensemble may have (a checkpoint asking for more is refused before anything is built)."""


class GeoTask(pl.LightningModule):
    """Shared machinery of the classification and regression tasks.

    Subclasses define the output size, the loss and how outputs become ``(lat, lon)``.
    Batches are dicts with ``images`` (B, 4, 3, H, W), ``class_index`` (B,),
    ``xy_scaled`` (B, 2), ``latlon`` (B, 2) degrees and ``uuid``; optionally ``view_mask``
    (B, 4) bool (the views present; absent ones may hold anything) and ``heading_known``
    (B, 4) bool (False: a photo of unknown heading in that slot).
    """

    task_name: ClassVar[str] = ""
    supports_ensemble: ClassVar[bool] = False
    """Whether members' outputs can be averaged (:meth:`combine_member_outputs`): classifier and regressor."""

    def __init__(
        self,
        backbone: str = OFFLINE_BACKBONE,
        pretrained: bool = True,
        pooling: Pooling = "concat",
        dropout: float = 0.0,
        optimizer: Literal["adam", "adamw"] = "adamw",
        lr: float = 1e-3,
        backbone_lr_factor: float = 0.1,
        weight_decay: float = 1e-4,
        scheduler: Literal["plateau", "onecycle", "none"] = "plateau",
        plateau_patience: int = 2,
        plateau_factor: float = 0.1,
        onecycle_pct_start: float = 0.3,
        monitor: str = f"val/{MEAN_NAME}",
        monitor_mode: Literal["min", "max"] = "min",
        freeze_backbone_epochs: FreezeEpochs = 1,
        channels_last: bool = False,
        compile_backbone: bool = False,
        cpu_bf16_frozen_backbone: bool = False,
        head_hidden: int = 0,
        freeze_batchnorm: bool = False,
        ensemble: int = 1,
        view_dropout: float = 0.0,
        heading_dropout: float = 0.0,
    ) -> None:
        """Configure the task; the network is built once the GeoContext is known.

        Args:
            backbone: Backbone name (see :func:`geoguess_utils.models.backbones.list_backbones`).
            pretrained: Start the backbone from ImageNet weights.
            pooling: ``"concat"`` the four views' features, take their ``"mean"``, or fuse them
                with ``"attention"`` (a small transformer over the views with a heading embedding).
            dropout: Dropout before the output layer.
            optimizer: ``"adam"`` or ``"adamw"``.
            lr: Learning rate of the output layer (the peak rate for one-cycle).
            backbone_lr_factor: Backbone learning rate = ``lr * backbone_lr_factor`` once unfrozen.
            weight_decay: Weight decay of the optimiser.
            scheduler: ``"plateau"`` (ReduceLROnPlateau on ``monitor``), ``"onecycle"`` or ``"none"``.
            plateau_patience: Epochs without improvement before the rate is reduced.
            plateau_factor: Factor the rate is multiplied by on a plateau.
            onecycle_pct_start: Share of the steps spent warming up in one-cycle.
            monitor: Logged metric the plateau scheduler watches.
            monitor_mode: Whether ``monitor`` improves when it goes ``"min"`` or ``"max"``.
            freeze_backbone_epochs: Epochs during which the backbone is frozen and only what sits
                on it learns, or ``"all"``: the backbone never trains (with the data module's
                embedding cache on, ``--data.embeddings.enabled true``, the backbone then never
                runs during training). :class:`~geoguess_utils.tasks.freezing.BackboneFreezing`
                does the freezing.
            channels_last: Use NHWC memory format for the convolutions (faster on GPUs and on
                CPUs alike).
            compile_backbone: Compile the backbone with ``torch.compile`` (static shapes) when
                training starts; the head, loss and metrics stay eager. Pays off on GPUs
                for long runs (minutes of compilation first); checkpoints are unaffected.
            cpu_bf16_frozen_backbone: While the backbone is frozen and training runs on a CPU
                with native bf16, run the backbone's forward pass under bf16 autocast (the
                head stays fp32): 2-3x faster steps there. Once the backbone trains, the
                trainer's ``precision`` decides (bf16 then helps or hurts depending on the
                network and image size; see ``BENCHMARKS.md``). No effect on GPUs.
            head_hidden: Width of one hidden ReLU layer in the head (0: one linear layer).
            freeze_batchnorm: Keep the backbone's batch-norm layers in eval mode for the whole
                run (their running statistics fixed; their scale and shift still train once the
                backbone does). The embedding cache is computed in eval mode, so this keeps
                the fine-tuning phase's features where the cached phase left the head.
            ensemble: Members whose outputs are averaged (classifiers: their probabilities).
                Above 1 the task holds one backbone and one fusion and head per member, and
                is assembled from separately trained runs (``geoguess fit --ensemble N``,
                :func:`geoguess_utils.tasks.ensemble.assemble_ensemble`), never trained as one
                network. Members share the backbone, so it must never train
                (``freeze_backbone_epochs: all``).
            view_dropout: While training, drop each view of a location with this probability
                (never all of them), so the model learns to answer from one to four photos
                (pooling ``attention`` or ``mean``; ``concat`` needs all four).
            heading_dropout: While training, mark each kept view's heading as unknown with this
                probability, which trains the attention's "heading unknown" embedding that
                loose photos of unknown heading use.
        """
        super().__init__()
        if not 1 <= int(ensemble) <= MAX_ENSEMBLE:
            raise ConfigError(f"ensemble must be from 1 to {MAX_ENSEMBLE} members, got {ensemble}")
        if int(ensemble) > 1 and not self.supports_ensemble:
            raise ConfigError(f"the {self.task_name or type(self).__name__} task cannot be an ensemble")
        self.ensemble = int(ensemble)
        for name, value in (("view_dropout", view_dropout), ("heading_dropout", heading_dropout)):
            if not 0.0 <= float(value) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if (view_dropout or heading_dropout) and pooling == "concat":
            raise ConfigError(
                "view_dropout and heading_dropout need a pooling that takes any views: attention or mean, not concat"
            )
        self.view_dropout = float(view_dropout)
        self.heading_dropout = float(heading_dropout)
        self.optimization = OptimizerSettings(optimizer, lr, backbone_lr_factor, weight_decay)
        self.schedule = ScheduleSettings(
            scheduler, plateau_patience, plateau_factor, onecycle_pct_start, monitor, monitor_mode
        )
        self.save_hyperparameters()
        # Read from here, not from hparams: under LightningCLI hparams hold only the arguments given.
        self.freeze_epochs: FreezeEpochs = check_freeze_epochs(freeze_backbone_epochs)
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.compile_backbone = bool(compile_backbone)
        self.cpu_bf16_frozen_backbone = bool(cpu_bf16_frozen_backbone)
        self.network_options: dict[str, Any] = {
            "backbone": backbone,
            "pretrained": bool(pretrained),
            "pooling": pooling,
            "dropout": float(dropout),
            "channels_last": bool(channels_last),
            "head_hidden": int(head_hidden),
        }
        self.context: GeoContext | None = None
        self.image_size: int | None = None
        self.net: MultiViewNet | None = None
        self.extra_heads: nn.ModuleList | None = None  # members 2..N of an ensemble: a fusion and head each
        self.training_data: dict[str, Any] | None = None  # what it was trained on (see checkpoint_record)
        self.calibration: Calibration | None = None  # fitted on the validation split (geoguess calibrate)
        self.val_km = HaversineMetrics()
        self.test_km = HaversineMetrics()

    # ------------------------------------------------------------------ context and network
    @classmethod
    def accepted_arguments(cls) -> set[str]:
        """Names of every ``__init__`` argument of this task: its own, and its bases' as far as ``**kwargs`` reach."""
        import inspect

        names: set[str] = set()
        for klass in cls.__mro__:
            if klass is pl.LightningModule:
                break
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            parameters = inspect.signature(init).parameters.values()
            names |= {
                p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            }
            if not any(p.kind == p.VAR_KEYWORD for p in parameters):
                break  # a task that spells out its arguments passes no others on to its base
        return names

    def num_outputs(self, context: GeoContext) -> int:
        """Hook: size of the output layer for ``context``."""
        raise NotImplementedError

    def configure_head(self, head: nn.Linear, context: GeoContext) -> None:
        """Hook: initialise the output layer (zeroed before this) from the training set."""

    def configure_metrics(self, context: GeoContext) -> None:
        """Hook: create the task's own metrics and buffers once the context is known.

        The great-circle metrics every task logs exist already (``val_km``, ``test_km``).
        """

    def configure_context(self, context: GeoContext, image_size: int | None = None) -> None:
        """Attach the fitted context and build the network for it.

        Calling again with an identical context changes nothing; a different one after
        the network exists is refused.

        Args:
            context: Everything fitted on the training split.
            image_size: Side of the square input images in pixels (recorded in checkpoints).

        Raises:
            CheckpointError: A network for a different context already exists.
        """
        if self.context is not None:
            if self.context.fingerprint() != context.fingerprint():
                raise CheckpointError(ckpt_record.describe_context_difference(self.context, context))
            if image_size is not None:
                self.image_size = int(image_size)
            return
        self.context = context
        self.image_size = None if image_size is None else int(image_size)
        self.net = MultiViewNet(num_outputs=self.num_outputs(context), **self.network_options)
        if self.network_options["channels_last"]:
            self.net.to(memory_format=torch.channels_last)
        if self.ensemble > 1:
            self.extra_heads = nn.ModuleList(self.net.fresh_fusion_head() for _ in range(self.ensemble - 1))
        for head in self._output_layers():
            with torch.no_grad():
                head.weight.zero_()  # start from the training prior; features then move predictions away from it
                head.bias.zero_()
            self.configure_head(head, context)
        self.configure_metrics(context)
        lat, lon = context.centroids_latlon("weighted").T
        n = context.class_table["n_train"].to_numpy(dtype=np.float64)
        weights = n / n.sum() if n.sum() > 0 else np.full(len(n), 1.0 / max(len(n), 1))
        self._fallback_latlon = (float(weights @ lat), float(weights @ lon))

    def _output_layers(self) -> list[nn.Linear]:
        """The last linear layer of every member's head (one without an ensemble)."""
        assert self.net is not None
        tops = [self.net, *(self.extra_heads or [])]
        return [top.head[-1] for top in tops]

    def setup(self, stage: str) -> None:
        """Check that the label space is known (and that an ensemble is not trained as one network).

        The :class:`~geoguess_utils.tasks.data_link.LabelSpaceLink` callback hands it over
        from the data module before this runs; without a data module, call
        :meth:`configure_context` first.
        """
        if stage == "fit" and self.ensemble > 1:
            raise ConfigError(
                f"an ensemble of {self.ensemble} is assembled from separately trained members "
                "(geoguess fit --ensemble N), not trained as one network"
            )
        if self.context is None:
            raise ConfigError(
                "the task has no GeoContext: train it through a GeoDataModule, or call configure_context()"
            )

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` RGB statistics the backbone's inputs are normalised with (from its registry entry)."""
        from geoguess_utils.models.backbones import backbone_normalization

        return backbone_normalization(str(self.hparams.backbone))

    def configure_callbacks(self) -> list[pl.Callback]:
        """The task's callbacks: where it meets its data (label space, normalisation) and the freezing."""
        from geoguess_utils.tasks.data_link import InputNormalization, LabelSpaceLink
        from geoguess_utils.tasks.freezing import BackboneFreezing

        return [LabelSpaceLink(), InputNormalization(*self.normalization), BackboneFreezing()]

    def on_fit_start(self) -> None:
        """Compile the backbone in place when ``compile_backbone`` is set (parameter names are unchanged)."""
        if self.compile_backbone and self.net is not None:
            self.net.backbone.compile(dynamic=False)

    def forward(
        self,
        images: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        heading_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Raw outputs, shape (B, num_outputs), of images shaped (B, 4, 3, H, W) (an ensemble's combined outputs).

        ``view_mask`` and ``heading_known`` (B, 4) bool: see the class docstring.
        """
        if self.extra_heads is None:
            return self._built_net()(images, view_mask, heading_known)
        return self._ensemble_outputs(self._built_net().view_features(images), view_mask, heading_known)

    def _ensemble_outputs(
        self,
        view_features: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        heading_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every member's outputs from the shared backbone's features (B, V, F), combined."""
        net = self._built_net()
        masks = (view_mask, heading_known)
        members = [net.from_view_features(view_features, *masks)]
        members += [top(view_features, *masks) for top in self.extra_heads or []]
        return self.combine_member_outputs(torch.stack(members))

    def combine_member_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Hook: an ensemble's outputs (B, O) from its members' (N, B, O); the mean by default."""
        return outputs.mean(dim=0)

    def _built_net(self) -> MultiViewNet:
        if self.net is None:
            raise ConfigError("the network is not built yet: call configure_context() or fit with a GeoDataModule")
        return self.net

    def fused_features(self, batch: dict[str, Any]) -> torch.Tensor:
        """Fused features (B, W) of a batch of images, or of cached per-view features (``"view_features"``)."""
        net = self._built_net()
        masks = (batch.get(VIEW_MASK), batch.get(HEADING_KNOWN))
        if "view_features" in batch:
            return net.fuse(batch["view_features"].float(), *masks)
        return net.features(batch["images"], *masks)

    # ------------------------------------------------------------------ subclass hooks
    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Training loss of a batch (scalar)."""
        raise NotImplementedError

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Turn raw outputs (B, num_outputs) into ``[lat, lon]`` degrees, (B, 2) float64 on CPU.

        Every returned point is finite and on land, whatever the outputs hold.
        """
        raise NotImplementedError

    def log_task_metrics(self, stage: str, outputs: torch.Tensor, batch: dict[str, Any]) -> None:
        """Hook: update and log the task's own metrics for a batch of ``stage``."""

    def _land(self, lat: np.ndarray, lon: np.ndarray) -> torch.Tensor:
        assert self.context is not None
        lat, lon = clip_to_land(lat, lon, self._fallback_latlon, self.context.variant)
        return torch.from_numpy(np.column_stack([lat, lon]))

    def predict_latlon(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted ``[lat, lon]`` degrees, shape (B, 2) float64, of images (B, 4, 3, H, W)."""
        return self.decode(self.batch_outputs({"images": images}))

    @property
    def takes_any_views(self) -> bool:
        """Whether the network fuses any one to four views, some of unknown heading (pooling ``attention`` or ``mean``).

        A network that concatenates the views (``concat``, the original design) has a place for
        each heading and needs all four with their headings; so does an ensemble with such a member.
        """
        tops = [self.net, *(self.extra_heads or [])]
        return self.net is not None and all(top.pooling != "concat" for top in tops)

    def with_view_dropout(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch with views dropped and headings hidden at random (``view_dropout``, ``heading_dropout``)."""
        if not (self.view_dropout or self.heading_dropout):
            return batch
        inputs = batch["view_features"] if "view_features" in batch else batch["images"]
        present = views_present(batch, inputs.shape[0], inputs.shape[1], inputs.device)
        kept = drop_views(present, self.view_dropout)
        known = hide_headings(kept, self.heading_dropout)
        if HEADING_KNOWN in batch:
            known = known & batch[HEADING_KNOWN].to(device=known.device, dtype=torch.bool)
        return {**batch, VIEW_MASK: kept, HEADING_KNOWN: known}

    # ------------------------------------------------------------------ steps
    def _bf16_backbone_now(self) -> bool:
        """Whether this training step runs the frozen backbone under CPU bf16 autocast."""
        return (
            self.cpu_bf16_frozen_backbone
            and self.backbone_frozen
            and self.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu")
            and precision.cpu_has_native_bf16()
        )

    def batch_outputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Raw outputs of a batch of images, or of cached per-view features (``"view_features"``, (B, V, F))."""
        masks = (batch.get(VIEW_MASK), batch.get(HEADING_KNOWN))
        if "view_features" in batch:
            features = batch["view_features"].float()
            if self.extra_heads is not None:
                return self._ensemble_outputs(features, *masks)
            return self._built_net().from_view_features(features, *masks)
        return self(batch["images"], *masks)

    def _training_outputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Outputs (B, O) to train on (the frozen backbone under CPU bf16 autocast where that is on)."""
        if self.net is None or "view_features" in batch or not self._bf16_backbone_now():
            return self.batch_outputs(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = self.net.view_features(batch["images"])
        return self.net.from_view_features(features.float(), batch.get(VIEW_MASK), batch.get(HEADING_KNOWN))

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss to train on and the outputs (B, O) the training metrics see (after view dropout)."""
        batch = self.with_view_dropout(batch)
        outputs = self._training_outputs(batch)
        return self.loss(outputs, batch), outputs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """One optimisation step; logs ``train/loss``."""
        loss, outputs = self.training_loss(batch)
        size = len(batch["latlon"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_task_metrics("train", outputs, batch)
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str, km: HaversineMetrics) -> torch.Tensor:
        outputs = self.batch_outputs(batch)
        loss = self.loss(outputs, batch)
        size = len(batch["latlon"])
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=size)
        self.log_task_metrics(stage, outputs, batch)
        km.update(self.decode(outputs).to(self.device), batch["latlon"])
        return loss

    def _log_km(self, stage: str, km: HaversineMetrics) -> None:
        values = km.compute()
        km.reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == MEAN_NAME)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Loss and great-circle errors of a validation batch."""
        return self._evaluate(batch, "val", self.val_km)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/mean_km``, ``val/median_km`` and ``val/acc_<t>_km``."""
        self._log_km("val", self.val_km)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Loss and great-circle errors of a test batch."""
        return self._evaluate(batch, "test", self.test_km)

    def on_test_epoch_end(self) -> None:
        """Log ``test/mean_km``, ``test/median_km`` and ``test/acc_<t>_km``."""
        self._log_km("test", self.test_km)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """The one inference step, for every task.

        Returns:
            ``{"uuid": list[str], "latlon": (B, 2) float64 degrees, "non_finite": (B,) bool,
            "views": (B,) int64}`` (the views each location was predicted from) plus what the
            task's outputs carry (:meth:`prediction_extras`: a classifier adds ``"probabilities"``,
            (B, K) float64). ``non_finite`` marks the locations whose
            outputs held NaN or infinity (their point is the fallback point). ``Trainer.predict``,
            :mod:`geoguess_utils.inference`, the embedding-free server path and the test
            split all read this; nothing else looks inside the network.
        """
        outputs = self.batch_outputs(batch)
        finite = torch.isfinite(outputs.detach()).reshape(len(outputs), -1).all(dim=1)
        result = {"uuid": list(batch["uuid"]), "latlon": self.decode(outputs), "non_finite": (~finite).cpu()}
        inputs = batch["view_features"] if "view_features" in batch else batch["images"]
        result["views"] = views_present(batch, inputs.shape[0], inputs.shape[1], inputs.device).sum(dim=1).cpu()
        result.update(self.prediction_extras(outputs))
        return result

    def prediction_extras(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra per-location results of :meth:`predict_step` (none by default)."""
        return {}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """Adam/AdamW over two parameter groups (head, backbone) and the chosen schedule.

        See :func:`geoguess_utils.tasks.optimization.configure_optimizers`: the backbone's rate
        is 0 while it is frozen (:class:`~geoguess_utils.tasks.freezing.BackboneFreezing`).
        """
        if self.net is None:
            raise ConfigError("cannot build the optimiser before the network: no GeoContext yet")
        total = int(self.trainer.estimated_stepping_batches) if self.schedule.scheduler == "onecycle" else 0
        return configure_optimizers(self.net, self.optimization, self.schedule, self.backbone_frozen, total)

    @property
    def backbone_frozen(self) -> bool:
        """Whether the backbone is frozen now (``freeze_backbone_epochs`` is ``"all"`` or not yet over)."""
        return self.backbone_frozen_in(self.current_epoch)

    def backbone_frozen_in(self, epoch: int) -> bool:
        """Whether the backbone is frozen during ``epoch`` (0-based), as ``freeze_backbone_epochs`` says."""
        return frozen_at(epoch, self.freeze_epochs)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_record(self) -> dict[str, Any]:
        """Everything needed to use a checkpoint on its own (plain, ``weights_only``-safe types)."""
        if self.context is None:
            raise CheckpointError("cannot describe a task without a GeoContext")
        from geoguess_utils.data.layout import HEADINGS

        mean, std = self.normalization

        return {
            "format": ckpt_record.RECORD_FORMAT,
            "task": self.task_name,
            "backbone": str(self.hparams.backbone),
            "pooling": str(self.hparams.pooling),
            "image_size": self.image_size,
            "normalization": {"mean": list(mean), "std": list(std)},
            "headings": [int(h) for h in HEADINGS],
            "context": self.context.to_dict(),
            "context_fingerprint": self.context.fingerprint(),
            ckpt_record.TRAINING_DATA_FIELD: self.training_data,
            ckpt_record.CALIBRATION_FIELD: None if self.calibration is None else self.calibration.to_dict(),
        }

    def on_save_checkpoint(self, checkpoint_dict: dict[str, Any]) -> None:
        """Store :meth:`checkpoint_record` under the ``"geoguess"`` key.

        Without the calibration: the trainer writes checkpoints while the weights change (a
        run resumed from a calibrated file would otherwise carry a stale one); ``geoguess fit``
        fits it on the best checkpoint once training ends.
        """
        checkpoint_dict[ckpt_record.RECORD_KEY] = {**self.checkpoint_record(), ckpt_record.CALIBRATION_FIELD: None}

    def on_load_checkpoint(self, checkpoint_dict: dict[str, Any]) -> None:
        """Rebuild (or check) the context and network from the checkpoint's record."""
        record = ckpt_record.read_record(checkpoint_dict)
        if record["task"] != self.task_name:
            raise CheckpointError(f"the checkpoint holds a {record['task']} model, not a {self.task_name} model")
        if record["backbone"] != self.hparams.backbone:
            raise CheckpointError(
                f"the checkpoint was trained with backbone {record['backbone']!r}, "
                f"but this model uses {self.hparams.backbone!r}"
            )
        saved = GeoContext.from_dict(record["context"])
        if self.context is not None and self.context.fingerprint() != saved.fingerprint():
            # the checkpoint's context is the saved side, the one this run configured is the requested side
            raise CheckpointError(ckpt_record.describe_context_difference(saved, self.context))
        self.configure_context(saved, record.get("image_size"))
        if record.get(ckpt_record.TRAINING_DATA_FIELD) is not None:
            self.training_data = record[ckpt_record.TRAINING_DATA_FIELD]
        stored = record.get(ckpt_record.CALIBRATION_FIELD)
        self.calibration = None if stored is None else Calibration.from_dict(stored)
