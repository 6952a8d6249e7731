"""The FastAPI application: health, model list, predictions, the sample and the page.

Build it with :func:`create_app`; ``geoguess serve`` runs it under uvicorn. Endpoints:

* ``GET /health``, ``GET /models``, ``GET /models/{name}/cells`` (the classes as GeoJSON);
* ``POST /models/{name}/predict``: one to four photos of one place, in the multipart fields
  ``0``, ``90``, ``180`` and ``270`` (the headings; each at most once) and/or ``photo``
  (heading unknown, repeatable); the answer says how many were used (``views_used``) and
  their ``headings``. A model that concatenates the views needs all four headings (422). A
  calibrated model's answer has its ``region``: where the true location lies with probability
  ``?region=`` (default 0.9), computed after the forward pass; ``null`` for a model never calibrated;
* ``POST /models/{name}/predict-batch``: a LUMEN zip in the field ``zip``, or field
  groups ``<uuid>/0`` .. ``<uuid>/270``, one to four headings per location; ``?format=csv``
  answers in the competition's columns; no search regions (one union of cells per location would
  cost more than the forward pass: ask ``/predict``, or run ``geoguess predict --region``);
* ``GET /``: the "where is this?" page, with ``/outline`` (Croatia) and ``/land`` (the countries
  around it) as its base map; ``GET /sample/random``: a location of the sample.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.serve import predictor, schemas, uploads
from geoguess_utils.serve.batcher import Batcher
from geoguess_utils.serve.errors import ApiError, BodyLimit, install_error_handlers
from geoguess_utils.serve.hosts import TrustedHosts
from geoguess_utils.serve.registry import LoadedModel, ModelRegistry
from geoguess_utils.serve.sample import SampleRoot
from geoguess_utils.serve.upload_slots import UploadSlots, release_slot
from geoguess_utils.serve.uploads import MAX_REQUEST_PIXELS
from geoguess_utils.tasks.calibration import DEFAULT_COVERAGE

log = logging.getLogger("geoguess.serve")
STATIC_DIR = Path(__file__).with_name("static")
ERRORS = {status: {"model": schemas.ErrorResponse} for status in (400, 404, 413, 415, 422, 500, 503)}
_HEADING_SCHEMA = {"type": "string", "format": "binary", "description": "photo (JPEG, PNG, WebP, ...)"}
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "1 to 4 photos in all: at most one per heading field, loose ones in 'photo'",
                    "properties": {
                        **{
                            field: {**_HEADING_SCHEMA, "description": f"photo at heading {field} (optional)"}
                            for field in uploads.HEADING_FIELDS
                        },
                        uploads.PHOTO_FIELD: {
                            "type": "array",
                            "items": _HEADING_SCHEMA,
                            "maxItems": uploads.MAX_VIEWS,
                            "description": "photos of unknown heading (optional, repeat the field)",
                        },
                    },
                }
            }
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "zip": {
                            "type": "string",
                            "format": "binary",
                            "description": "a zip in the LUMEN layout: [data/|images/]<uuid>/{0,90,180,270}.jpg "
                            "(one to four per location)",
                        }
                    },
                    "additionalProperties": {
                        "type": "string",
                        "format": "binary",
                        "description": "or, instead of a zip, fields named <uuid>/<heading>",
                    },
                }
            }
        },
    }
}


@dataclass
class ServeConfig:
    """Settings of the service.

    Attributes:
        models_dir: Folder of ``*.ckpt`` files; no other checkpoint can be used.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        max_upload_bytes: Largest request body, bytes.
        max_pixels: Largest source photo (width * height), the reader's decompression-bomb limit.
        max_batch: Most locations per forward pass; 1 turns batching off.
        max_wait_ms: Longest a request waits for others to share its forward pass, milliseconds.
        max_queue: Most requests waiting for a forward pass; more are answered 503.
        retry_after_s: The ``Retry-After`` of a 503, seconds.
        max_locations: Most locations in one ``predict-batch`` request.
        sample_dir: A dataset root for the page's random-location button (``None``: no button).
        tiles: Offer OpenStreetMap tiles on the page (off by default: the page works offline).
        preload: Load every checkpoint at start-up instead of on first use.
        torch_threads: Threads of the forward pass on a CPU (``None``: half the CPUs, at
            least one). The rest decode photos and answer requests; on a small or busy
            machine more threads make each pass slower, as they wait for each other.
        max_request_pixels: Most source pixels one batch request's photos may declare in all
            (413 beyond): the per-photo limit stops one bomb, this stops many.
        allowed_hosts: ``Host`` header names the server answers (others get a 400: a guard
            against DNS rebinding; see :mod:`geoguess_utils.serve.hosts`); ``None`` answers
            any name. ``geoguess serve`` sets this machine's names and the listening address.
        max_uploads: Requests with a body read and decoded at once (each may take several
            times its size in memory for a moment); see :mod:`geoguess_utils.serve.upload_slots`.
        max_waiting_uploads: Requests with a body waiting for one of those slots; more are
            answered 503.
    """

    models_dir: Path
    device: str = "auto"
    max_upload_bytes: int = 20_000_000
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 64
    retry_after_s: int = 1
    max_locations: int = 256
    sample_dir: Path | None = None
    tiles: bool = False
    preload: bool = False
    torch_threads: int | None = None
    allowed_hosts: tuple[str, ...] | None = None
    max_request_pixels: int = MAX_REQUEST_PIXELS
    max_uploads: int = 8
    max_waiting_uploads: int = 64


def default_torch_threads() -> int:
    """Half the CPUs this process may use (:func:`geoguess_utils.threads.available_cpus`), at least one."""
    from geoguess_utils.threads import available_cpus

    return max(1, available_cpus() // 2)


def _leaflet_dir() -> Path:
    try:
        import xstatic.pkg.leaflet as leaflet
    except ImportError as exc:
        raise ConfigError("the page needs the package xstatic-leaflet (pip install xstatic-leaflet)") from exc
    return Path(leaflet.BASE_DIR)


async def _read_form(request: Request, max_files: int) -> tuple[dict[str, list[uploads.Upload]], dict[str, list[str]]]:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, f"send multipart/form-data, not {content_type or 'no content type'!r}", "content-type")
    files: dict[str, list[uploads.Upload]] = {}
    others: dict[str, list[str]] = {}
    async with request.form(max_files=max_files, max_fields=max_files) as form:
        for field, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                upload = uploads.Upload(field, value.filename or "", value.content_type or "", data)
                files.setdefault(field, []).append(upload)
            else:
                others.setdefault(field, []).append(value)
    return files, others


def _outline_geojson() -> dict[str, Any]:
    """Croatia (islands included) as GeoJSON, simplified to about 1 km, for the page's base map."""
    import shapely

    from geoguess_utils.geo import borders

    return shapely.geometry.mapping(shapely.simplify(borders.croatia("full"), 0.01))


def _land_geojson() -> dict[str, Any]:
    """The countries around Croatia as GeoJSON, simplified like the outline: the page's land outside Croatia."""
    import shapely

    from geoguess_utils.viz.webmap import neighbouring_land

    return shapely.geometry.mapping(neighbouring_land(0.01))


def _named_cells(context: Any) -> dict[str, Any]:
    """The model's cells as GeoJSON (:func:`predictor.cells_geojson`), each with a name and its class point.

    Each feature's properties gain ``name`` (after the nearest place and the class point,
    e.g. ``"12 km SE of Zadar (44.12° N, 15.23° E)"``) and the class point's ``latitude``
    and ``longitude`` (degrees): what the page shows instead of the cell's number.
    """
    from geoguess_utils.viz.place_names import cell_names

    collection = predictor.cells_geojson(context)
    points = context.centroids_latlon()
    for feature, name, (lat, lon) in zip(
        collection["features"], cell_names(points[:, 0], points[:, 1]), points.tolist(), strict=True
    ):
        feature["properties"].update(name=name, latitude=lat, longitude=lon)
    return collection


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_batch(models: Mapping[int, LoadedModel]):  # noqa: ANN202 - the batcher's RunBatch
    def run(key: int, pixels: Any, uuids: list[str], **masks: Any) -> list[dict[str, Any]]:
        loaded = models[key]
        results = predictor.predict_locations(
            loaded.task, loaded.device, pixels, uuids, with_probabilities=True, **masks
        )
        for item in results:
            item["batch_size"] = len(uuids)
        return results

    return run


def create_app(config: ServeConfig) -> FastAPI:
    """Build the service for ``config`` (nothing is loaded until the app starts).

    Raises:
        ConfigError: The models folder is missing, the device unknown, a limit not positive,
            or the sample folder unusable.
    """
    if config.max_upload_bytes < 1 or config.max_pixels < 1 or config.max_locations < 1:
        raise ConfigError("max_upload_bytes, max_pixels and max_locations must be positive")
    if config.max_uploads < 1 or config.max_waiting_uploads < 0:
        raise ConfigError(
            f"max_uploads must be at least 1 and max_waiting_uploads at least 0, "
            f"got {config.max_uploads} and {config.max_waiting_uploads}"
        )
    if config.torch_threads is not None and config.torch_threads < 1:
        raise ConfigError(f"torch_threads must be at least 1, got {config.torch_threads}")
    threads = config.torch_threads or default_torch_threads()
    registry = ModelRegistry(config.models_dir, config.device)
    sample = None
    if config.sample_dir is not None:
        try:
            sample = SampleRoot(config.sample_dir)
        except DataError as exc:
            raise ConfigError(f"--sample: {exc}") from exc
    # Held weakly: a model replaced by a newer version of its file is freed once the last request
    # that uses it has its answer (the registry holds the current version).
    models: weakref.WeakValueDictionary[int, LoadedModel] = weakref.WeakValueDictionary()
    cells_cache: weakref.WeakKeyDictionary[LoadedModel, dict[str, Any]] = weakref.WeakKeyDictionary()
    outline_cache: dict[str, dict[str, Any]] = {}  # Croatia's outline and the land around it: computed once
    batcher = Batcher(
        _run_batch(models),
        max_batch=config.max_batch,
        max_wait_s=config.max_wait_ms / 1000.0,
        max_queue=config.max_queue,
        retry_after_s=config.retry_after_s,
        on_thread_start=lambda: _set_torch_threads(threads),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        if config.preload:
            names = await run_in_threadpool(registry.preload)
            log.info("loaded %d model(s): %s", len(names), ", ".join(names))
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="geoguess",
        description="Where in Croatia were these Street View photos taken? (one to four of a place)",
        version="1",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.registry = registry
    app.state.batcher = batcher
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(
        UploadSlots,
        max_uploads=config.max_uploads,
        max_waiting=config.max_waiting_uploads,
        retry_after_s=config.retry_after_s,
    )  # added after the body limit: it runs first, before any body is read
    if config.allowed_hosts is not None:
        app.add_middleware(TrustedHosts, allowed=config.allowed_hosts)  # added last: it runs first
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/assets/leaflet", StaticFiles(directory=_leaflet_dir()), name="leaflet")

    async def load(name: str) -> LoadedModel:
        loaded = await run_in_threadpool(registry.get, name)
        models[id(loaded)] = loaded
        return loaded

    def timing(started: float, decoded: float, batch_size: int) -> schemas.Timing:
        now = time.perf_counter()
        return schemas.Timing(
            decode_ms=1000 * (decoded - started),
            inference_ms=1000 * (now - decoded),
            total_ms=1000 * (now - started),
            batch_size=batch_size,
        )

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health", response_model=schemas.Health)
    async def health() -> schemas.Health:
        """Whether the server answers, and how many checkpoints it can serve."""
        usable, _ = await run_in_threadpool(registry.catalogue)
        return schemas.Health(
            status="ok",
            models=len(usable),
            loaded=len(models),
            queued=batcher.queued,
            batching={
                "max_batch": batcher.max_batch,
                "max_wait_ms": config.max_wait_ms,
                "max_queue": batcher.max_queue,
                "torch_threads": threads,
                **batcher.stats.to_dict(),
            },
        )

    @app.get("/config", include_in_schema=False)
    async def page_config() -> dict[str, Any]:
        return {"tiles": config.tiles, "sample": sample is not None}

    @app.get("/models", response_model=schemas.ModelList)
    async def list_models() -> schemas.ModelList:
        """The checkpoints in the models folder, with what each was trained on."""
        usable, skipped = await run_in_threadpool(registry.catalogue)
        return schemas.ModelList(
            models=[schemas.ModelEntry(**info.to_dict()) for info in usable],
            skipped=[schemas.SkippedModel(name=name, reason=reason) for name, reason in skipped],
        )

    @app.get("/models/{name}/cells", responses=ERRORS)
    async def model_cells(name: str) -> dict[str, Any]:
        """The model's classes (grid cells) as a GeoJSON FeatureCollection, in class_index order."""
        loaded = await load(name)
        if loaded not in cells_cache:
            cells_cache[loaded] = await run_in_threadpool(_named_cells, loaded.task.context)
        return cells_cache[loaded]

    @app.post(
        "/models/{name}/predict",
        response_model=schemas.PredictResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        openapi_extra=_PREDICT_BODY,
    )
    async def predict(
        name: str,
        request: Request,
        probabilities: bool = False,
        region: float = Query(
            DEFAULT_COVERAGE,
            gt=0,
            lt=1,
            description="nominal coverage of the answer's search region, strictly between 0 and 1 (400 otherwise)",
        ),
    ) -> schemas.PredictResponse:
        """Locate one place from 1 to 4 photos: fields 0, 90, 180, 270 (the headings) and/or photo (heading unknown).

        A model trained with pooling concat needs all four headings (422 otherwise). A calibrated
        model's answer has its search region of coverage ``region``; an uncalibrated one's ``null``.
        """
        started = time.perf_counter()
        loaded = await load(name)
        files, others = await _read_form(request, max_files=8)
        size = int(loaded.task.image_size)
        location = uploads.location_from_form(files, others, all_headings=not loaded.task.takes_any_views)
        views = await run_in_threadpool(uploads.one_location, "upload", location, size, config.max_pixels)
        del files, location
        release_slot(request.scope)  # decoded: the upload is no longer held
        decoded = time.perf_counter()
        (result,) = await batcher.submit(id(loaded), views.pixels, views.uuids, views.view_mask, views.heading_known)
        row = result["probabilities"]
        search = None
        if loaded.regions is not None:  # after the forward pass, from what it returned
            search = await run_in_threadpool(
                predictor.search_region, loaded.regions, region, row, result["latitude"], result["longitude"]
            )
        return schemas.PredictResponse(
            **{k: v for k, v in result.items() if k not in ("batch_size", "probabilities")},
            probabilities=row.tolist() if probabilities and row is not None else None,
            model=loaded.info.name,
            digest=loaded.info.digest,
            timing=timing(started, decoded, result["batch_size"]),
            region=None if search is None else schemas.SearchRegion(**search),
        )

    @app.post(
        "/models/{name}/predict-batch",
        response_model=schemas.BatchResponse,
        response_model_exclude_none=True,
        responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
        openapi_extra=_BATCH_BODY,
    )
    async def predict_batch(name: str, request: Request, format: str = "json") -> Any:
        """Locate several places: a LUMEN zip in field ``zip``, or field groups ``<uuid>/0`` .. ``<uuid>/270``.

        Each place may have one to four of its headings (all four for a model trained with pooling concat).
        No search regions here: ask ``/predict`` for one place's, or run ``geoguess predict --region``.
        """
        if format not in ("json", "csv"):
            raise ApiError(400, f"format must be json or csv, not {format!r}", "format")
        started = time.perf_counter()
        loaded = await load(name)
        size = int(loaded.task.image_size)
        all_headings = not loaded.task.takes_any_views
        files, others = await _read_form(request, max_files=4 * config.max_locations + 1)
        if others:
            field = next(iter(others))
            raise ApiError(400, f"field {field!r} must be a file", field)
        if "zip" in files:
            if len(files) > 1 or len(files["zip"]) != 1:
                raise ApiError(
                    400, "send one zip in field 'zip' and nothing else, or field groups without a zip", "zip"
                )
            archive = files["zip"][0]
            uploads.check_content_type(archive, uploads.ZIP_CONTENT_TYPES)
            locations = await run_in_threadpool(
                uploads.locations_from_zip,
                archive.data,
                size,
                config.max_locations,
                config.max_upload_bytes,
                4 * config.max_upload_bytes,
                config.max_pixels,
                config.max_request_pixels,
                all_headings,
            )
            del archive
        else:
            locations = await run_in_threadpool(
                uploads.locations_from_fields,
                files,
                size,
                config.max_locations,
                config.max_pixels,
                config.max_request_pixels,
                all_headings,
            )
        del files
        release_slot(request.scope)  # decoded: the upload is no longer held
        decoded = time.perf_counter()
        results: list[dict[str, Any]] = []
        largest = 0
        for start in range(0, len(locations), config.max_batch):
            part = locations.part(start, start + config.max_batch)
            chunk = await batcher.submit(id(loaded), part.pixels, part.uuids, part.view_mask, part.heading_known)
            largest = max(largest, chunk[0]["batch_size"])
            results += chunk
        if format == "csv":
            lines = ["uuid,latitude,longitude", *(f"{r['uuid']},{r['latitude']!r},{r['longitude']!r}" for r in results)]
            return Response("\n".join(lines) + "\n", media_type="text/csv")
        return schemas.BatchResponse(
            model=loaded.info.name,
            digest=loaded.info.digest,
            count=len(results),
            results=[
                schemas.Prediction(**{k: v for k, v in r.items() if k not in ("batch_size", "probabilities")})
                for r in results
            ],
            timing=timing(started, decoded, largest),
        )

    @app.get("/outline", include_in_schema=False)
    async def outline() -> dict[str, Any]:
        if "outline" not in outline_cache:
            outline_cache["outline"] = await run_in_threadpool(_outline_geojson)
        return outline_cache["outline"]

    @app.get("/land", include_in_schema=False)
    async def land() -> dict[str, Any]:
        """The land of the countries around Croatia (Croatia left out), drawn under Croatia's outline."""
        if "land" not in outline_cache:
            outline_cache["land"] = await run_in_threadpool(_land_geojson)
        return outline_cache["land"]

    @app.get("/sample", response_model=schemas.SampleInfo)
    async def sample_info() -> schemas.SampleInfo:
        """Whether the server offers random locations of a sample, and how many."""
        return schemas.SampleInfo(available=sample is not None, count=0 if sample is None else len(sample))

    @app.get("/sample/random", response_model=schemas.SampleLocation, responses=ERRORS)
    async def sample_random() -> schemas.SampleLocation:
        """A random location of the sample: its uuid, photo URLs and (when known) true position."""
        if sample is None:
            raise ApiError(404, "this server has no sample (start it with --sample DIR)")
        uuid = sample.pick()
        lat, lon = sample.truth.get(uuid, (None, None))
        views = {field: f"/sample/{uuid}/{field}" for field in uploads.HEADING_FIELDS}
        return schemas.SampleLocation(uuid=uuid, views=views, latitude=lat, longitude=lon)

    @app.get("/sample/{uuid}/{heading}", responses=ERRORS)
    async def sample_view(uuid: str, heading: int) -> FileResponse:
        """One photo of a sample location (heading 0, 90, 180 or 270)."""
        if sample is None:
            raise ApiError(404, "this server has no sample (start it with --sample DIR)")
        try:
            path = sample.view_file(uuid, heading)
        except DataError as exc:
            raise ApiError(404, str(exc), "uuid") from exc
        return FileResponse(path, media_type="image/jpeg")

    return app
