"""Response models of the inference service (they shape the OpenAPI document at ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer


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
    calibrated: bool = Field(
        False,
        description="whether the checkpoint holds a calibration fitted on its validation split (geoguess "
        "calibrate): only then do its predictions come with a search region",
    )


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
    inference_ms: float = Field(
        description="waiting for and running the forward pass (and, for /predict, computing the search region)"
    )
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


class SearchRegion(BaseModel):
    """Where the true location lies with probability ``coverage`` (split conformal, fitted on the validation split).

    A classifier's region is the fewest most probable cells whose calibrated probability
    reaches the validation threshold; a regressor's is a disc around the predicted point.
    """

    coverage: float = Field(gt=0, lt=1, description="nominal coverage asked for (?region=), e.g. 0.9")
    area_km2: float | None = Field(
        description="area of the region, km² (cells: the sum of their areas; disc: pi r², not clipped to land); "
        "null when the region is unbounded: the validation split was too small for this coverage (JSON has no "
        "infinity), the geometry is then null too"
    )
    geojson: dict[str, Any] = Field(
        description="a GeoJSON Feature in lon/lat degrees: geometry Polygon or MultiPolygon (the union of the "
        "cells, simplified to about 200 m) or Polygon (a geodesic disc), or null when unbounded; properties "
        "coverage, area_km2 and cells (cell ids, most probable first) or radius_km"
    )

    @model_serializer(mode="wrap")
    def _keep_null_area(self, handler: SerializerFunctionWrapHandler):  # noqa: ANN202 - keeps the fields' schema
        data = handler(self)  # an unbounded area is null, not left out (the answers leave out other nulls)
        return {"coverage": data["coverage"], "area_km2": data.get("area_km2"), "geojson": data["geojson"]}


class PredictResponse(Prediction):
    """``POST /models/{name}/predict``."""

    model: str
    digest: str
    timing: Timing
    region: SearchRegion | None = Field(
        description="the search region of coverage ?region= (default 0.9); null when the model is not calibrated "
        "(run geoguess calibrate --ckpt on it)"
    )

    @model_serializer(mode="wrap")
    def _keep_null_region(self, handler: SerializerFunctionWrapHandler):  # noqa: ANN202 - keeps the fields' schema
        data = handler(self)  # null for an uncalibrated model, not left out as the answers' other nulls are
        data.setdefault("region", None)
        return data


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
