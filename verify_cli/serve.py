"""`faceverify serve`'s HTTP API (FastAPI, run by uvicorn; `pip install '.[serve]'`): the CLI's answers over HTTP.

The model and the face pipeline are loaded once and shared; ONNX Runtime sessions are safe to run from several
threads, and FastAPI runs these plain (sync) endpoints in its thread pool, so requests are served in parallel.
An upload is read into memory up to the size limit, then handed to the same face pipeline as the CLI's through a
private temporary file with a random name, deleted when the request ends: the client's file name is never used
as a path. Every failure is the CLI's one line, as JSON `{"error": ...}` with a 4xx status; a server error never
shows a traceback to the client.
"""


import contextlib
import hmac
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from verify_cli.errors import FaceverifyError

DEFAULT_MAX_BYTES = 8 * 1024 * 1024  # per uploaded image
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff",
               "application/octet-stream"}  # octet-stream: clients that do not say; Pillow decides


class RequestError(Exception):
    """A client error: its HTTP status and the one line the CLI would print."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Service:
    """What every request shares: the model, how faces are read, the gallery (if any), the limits."""

    model: Any  # verify_cli.runtime.Model
    reader: Any  # verify_cli.scoring.FaceReader
    describe: Callable[[], dict]  # what `faceverify info --json` says
    gallery: Path | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    api_key: str | None = None

    def __post_init__(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="faceverify-serve-"))  # mode 0700: this user's alone

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    @contextlib.contextmanager
    def as_file(self, field: str, data: bytes) -> Iterator[Path]:
        """An upload as a private file with a random name, deleted on leaving; errors name the field, not it."""
        path = self.scratch / uuid.uuid4().hex
        path.write_bytes(data)
        try:
            yield path
        except FaceverifyError as exc:
            raise RequestError(400, exc.message.replace(str(path), field)) from None
        finally:
            path.unlink(missing_ok=True)

    def read_face(self, field: str, data: bytes) -> tuple[Any, dict | None]:
        """The face of one uploaded image as model input, through the CLI's face pipeline."""
        with self.as_file(field, data) as path:
            return self.reader.input(path)


async def _upload(upload: Any, field: str, limit: int) -> bytes:
    """An uploaded file's bytes, refused past `limit` (413) or when it says it is not an image (415)."""
    kind = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if kind not in IMAGE_TYPES:
        raise RequestError(415, f"{field}: unsupported type {kind} (send a JPEG, PNG, WebP, BMP, GIF or TIFF image)")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise RequestError(413, f"{field}: image larger than the {limit:,}-byte limit")
    if not data:
        raise RequestError(400, f"{field}: empty file")
    return data


def create_app(service: Service) -> Any:
    """The FastAPI application over `service`: the web page at /, then /verify, /embed, /identify, /health, /model;
    OpenAPI at /docs."""
    import numpy as np
    from fastapi import Depends, FastAPI, File, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    from verify_cli import __version__

    app = FastAPI(title="faceverify", version=__version__,
                  description="Say whether two face photos show the same person.")

    @app.exception_handler(RequestError)
    async def client_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def missing_field(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({str(e["loc"][-1]) for e in exc.errors()})
        return JSONResponse({"error": f"missing or invalid field(s): {', '.join(fields)}"}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    def authorised(request: Request) -> None:
        if service.api_key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), service.api_key.encode()):
            raise RequestError(401, "missing or wrong API key (send it as X-API-Key)")

    guarded = [Depends(authorised)]
    model = service.model
    from verify_cli.cli.embed import describe_model, read_faces

    about = describe_model(model)  # the model's identity and head: hashed and probed once, not per request

    page = (resources.files("verify_cli") / "assets" / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def web_page() -> str:
        """The web page: two photos to compare (faces boxed), and one to identify; plain HTML, no CDN."""
        return page

    @app.get("/health")
    def health() -> dict:
        """Liveness: always answers, even with an API key set."""
        return {"status": "ok", "version": __version__}

    @app.get("/model", dependencies=guarded)
    def model_info() -> dict:
        """What `faceverify info --json` says about the model being served."""
        return service.describe()

    @app.post("/verify", dependencies=guarded)
    async def verify(a: UploadFile = File(...), b: UploadFile = File(...)) -> dict:  # noqa: B008 - FastAPI's idiom
        """Two photos: the probability that they show the same person, the decision, and the faces used."""
        data = {"a": await _upload(a, "a", service.max_bytes), "b": await _upload(b, "b", service.max_bytes)}
        start = time.perf_counter()
        faces = {field: service.read_face(field, raw) for field, raw in data.items()}
        tick = time.perf_counter()
        emb = model.embed(np.stack([faces["a"][0], faces["b"][0]]))
        p = float(model.score(emb[:1], emb[1:])[0])
        done = time.perf_counter()
        t = model.threshold
        return {"probability": p, "same": p >= t, "decision": "same" if p >= t else "different", "threshold": t,
                "threshold_source": "model", "provider": model.provider, "model": model.path.name,
                "faces": {"left": faces["a"][1], "right": faces["b"][1]},
                "seconds": {"faces": tick - start, "model": done - tick}}

    @app.post("/embed", dependencies=guarded)
    async def embed(image: UploadFile = File(...), all_faces: bool = False) -> dict:  # noqa: B008
        """One photo: the embedding of its face (`all_faces`: of every face, largest first), as `embed --json`."""
        data = await _upload(image, "image", service.max_bytes)
        with service.as_file("image", data) as path:
            rows = read_faces([path], service.reader, all_faces and service.reader.pipeline is not None)
        vectors = model.embed(np.stack([array for _, _, array in rows]))
        return {**about, "model": model.path.name,
                "embeddings": [{"image": "image", "face": record, "embedding": vector.tolist()}
                               for (_, record, _), vector in zip(rows, vectors)]}

    @app.post("/identify", dependencies=guarded)
    async def identify(image: UploadFile = File(...), top: int = 2) -> dict:  # noqa: B008
        """One photo against the gallery given at start-up: the best match, or unknown below the threshold."""
        if service.gallery is None:
            raise RequestError(400, "no gallery: start the server with --gallery DIR")
        array, record = service.read_face("image", await _upload(image, "image", service.max_bytes))
        from verify_cli.gallery import identify as search
        from verify_cli.gallery import load_gallery, model_identity
        from verify_cli.gallery.embed import embed_photos, pipeline_key

        known, _ = load_gallery(service.gallery, lambda paths: embed_photos(model, paths, service.reader),
                                model_identity(model.path), pipeline_key(service.reader), None)
        [answer] = search(model.score, model.threshold, ["image"], model.embed(array[None]), known, max(1, top))
        return {**answer.as_json(), "faces": record}

    return app


def check_bind(host: str) -> str | None:
    """A warning for a server reachable from other machines: faces are biometric data."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (f"serving on {host}: other machines can reach it, and the photos sent are biometric data; "
            "set --api-key (or FACEVERIFY_API_KEY) and put it behind TLS")


def api_key_from(option: str | None) -> str | None:
    """The API key: the option, else $FACEVERIFY_API_KEY, else none (every endpoint open)."""
    key = option if option is not None else os.environ.get("FACEVERIFY_API_KEY")
    return key or None
