"""Response models of the inference service (they shape the OpenAPI document at ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """What went wrong with a request."""

    status: int = Field(description="HTTP status")
    message: str = Field(description="what is wrong, in words")
    field: str | None = Field(None, description="the form field, zip member or parameter at fault")
    id: str | None = Field(None, description="for internal errors: the id to look up in the server log")


class ErrorResponse(BaseModel):
    """Body of every 4xx and 5xx answer."""

    error: ErrorDetail


class Health(BaseModel):
    """``GET /health``."""

    status: str = Field(description="'ok' while the server answers")
    models: int = Field(description="usable checkpoints in the models folder")
    loaded: int = Field(0, description="models held in memory")
    queued: int = Field(0, description="requests waiting for a forward pass")
    batching: dict[str, Any] = Field(default_factory=dict, description="limits and counters of the batcher")


class ModelEntry(BaseModel):
    """One checkpoint of the models folder."""

    name: str = Field(description="file name without .ckpt; the {name} of the predict endpoints")
    task: str = Field(description="classification or regression")
    backbone: str
    image_size: int = Field(description="side of the square views the model takes, pixels")
    num_classes: int = Field(description="grid cells (classes) of the model's GeoContext")
    cell_scheme: str = Field(description="cell scheme and its parameters, Croatia variant and projected CRS")
    train_size: int = Field(description="training locations the GeoContext was fitted on")
    digest: str = Field(description="SHA-256 of the checkpoint file")
    bytes: int = Field(description="size of the checkpoint file")


class SkippedModel(BaseModel):
    """A ``*.ckpt`` entry that cannot be served, and why."""

    name: str
    reason: str


class ModelList(BaseModel):
    """``GET /models``."""

    models: list[ModelEntry]
    skipped: list[SkippedModel] = Field(default_factory=list)


class Cell(BaseModel):
    """One grid cell of a classifier's answer."""

    cell_id: int
    class_index: int
    probability: float
    latitude: float = Field(description="the cell's class point, degrees")
    longitude: float = Field(description="the cell's class point, degrees")
    polygon: dict[str, Any] = Field(description="the cell's box as a GeoJSON Polygon (lon, lat)")


class Timing(BaseModel):
    """Where the time of a request went, milliseconds."""

    decode_ms: float = Field(description="decoding and resizing the uploaded photos")
    inference_ms: float = Field(description="waiting for and running the forward pass")
    total_ms: float = Field(description="from the body being read to the answer")
    batch_size: int = Field(description="locations in the forward pass this request was part of")


class Prediction(BaseModel):
    """The answer for one location."""

    uuid: str
    latitude: float = Field(description="predicted latitude, degrees")
    longitude: float = Field(description="predicted longitude, degrees")
    top_cells: list[Cell] | None = Field(None, description="classifiers: the five most probable cells")
    non_finite: bool = Field(
        False,
        description="true when the network's outputs held NaN or infinity: the point is then the model's "
        "fallback point (the training set's mean position) and means nothing",
    )
    views_used: int = Field(ge=1, le=4, description="photos the prediction was made from, 1 to 4")
    headings: list[str] = Field(
        description="the headings of those photos: '0', '90', '180', '270' in that order, then 'unknown' "
        "for each photo of unknown heading"
    )
    probabilities: list[float] | None = Field(
        None, description="with ?probabilities=true: every class's probability, in class_index order"
    )


class PredictResponse(Prediction):
    """``POST /models/{name}/predict``."""

    model: str
    digest: str
    timing: Timing


class BatchResponse(BaseModel):
    """``POST /models/{name}/predict-batch`` (JSON form)."""

    model: str
    digest: str
    count: int
    results: list[Prediction]
    timing: Timing


class SampleInfo(BaseModel):
    """``GET /sample``."""

    available: bool
    count: int = 0


class SampleLocation(BaseModel):
    """``GET /sample/random``: a location of the sample and where its photos are."""

    uuid: str
    views: dict[str, str] = Field(description="heading -> URL of the photo")
    latitude: float | None = Field(None, description="true latitude when the sample's data.csv has it")
    longitude: float | None = Field(None, description="true longitude when the sample's data.csv has it")
