"""`faceverify serve`: the HTTP API through FastAPI's test client and through a real server process on a free
localhost port, on real LFW photos: the CLI's answers, bad inputs as one-line JSON errors, the size limit, the API
key, concurrent requests, and a clean stop."""

from __future__ import annotations

import json
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import IN_CI, invoke

fastapi = pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install '.[serve]')")
from fastapi.testclient import TestClient

from bench.serve import running_server
from verify_cli.cli.info import info_record
from verify_cli.cli.options import Provider, face_reader, load_model
from verify_cli.serve import Service, check_bind, create_app


def _client(gallery: Path | None = None, max_bytes: int = 8 << 20, api_key: str | None = None) -> TestClient:
    model = load_model(None, Provider.cpu)
    service = Service(model, face_reader(model, False, "largest", None), lambda: info_record(model, Provider.cpu),
                      gallery, max_bytes, api_key)
    return TestClient(create_app(service))


@pytest.fixture(scope="module")
def client() -> TestClient:
    return _client()


def _files(**paths: Path) -> dict:
    return {name: (path.name, path.read_bytes(), "image/jpeg") for name, path in paths.items()}


def test_verify_answers_as_compare_does(client: TestClient, lfw_images: list[Path]) -> None:
    for a, b in ((lfw_images[0], lfw_images[1]), (lfw_images[0], lfw_images[2])):
        got = client.post("/verify", files=_files(a=a, b=b))
        assert got.status_code == 200, got.text
        body = got.json()
        cli = json.loads(invoke("compare", a, b, "--json", "--provider", "cpu").stdout)
        assert body["probability"] == pytest.approx(cli["probability"], abs=1e-6)
        for key in ("same", "decision", "threshold", "threshold_source", "provider"):
            assert body[key] == cli[key], key
        assert body["faces"]["left"]["box"] == cli["faces"]["left"]["box"]
        assert body["seconds"]["faces"] > 0 and body["seconds"]["model"] > 0


def test_embed_and_model_answer_as_the_cli_does(client: TestClient, lfw_images: list[Path]) -> None:
    body = client.post("/embed", files=_files(image=lfw_images[0])).json()
    cli = json.loads(invoke("embed", lfw_images[0], "--json", "--provider", "cpu").stdout)
    [face] = body["embeddings"]
    assert face["embedding"] == pytest.approx(cli["embeddings"][0]["embedding"], abs=1e-6)
    assert face["face"] == cli["embeddings"][0]["face"]
    assert body["model_identity"] == cli["model_identity"] and body["compare"] == cli["compare"]
    model = client.get("/model").json()
    assert model["metadata"]["faceverify.threshold"] == cli["compare"]["threshold"]
    assert {"models", "auto_precision", "provider"} <= set(model)
    assert client.get("/health").json()["status"] == "ok"
    assert {"/verify", "/embed", "/identify", "/health", "/model"} <= set(client.get("/openapi.json").json()["paths"])


def test_embed_every_face_of_a_group_photo(client: TestClient, lfw_images: list[Path], tmp_path: Path) -> None:
    from test_cli_faces import photo

    group = photo(tmp_path / "group.jpg", [(lfw_images[3], 420, 0.0, (40, 150)), (lfw_images[0], 260, 0.0, (620, 60))])
    every = client.post("/embed", files=_files(image=group), params={"all_faces": True}).json()["embeddings"]
    cli = json.loads(invoke("embed", group, "--all-faces", "--json", "--provider", "cpu").stdout)["embeddings"]
    assert [e["face"]["face_used"] for e in every] == [0, 1] == [e["face"]["face_used"] for e in cli]
    assert every[1]["embedding"] == pytest.approx(cli[1]["embedding"], abs=1e-6)


def test_identify_against_the_gallery_given_at_start_up(lfw_images: list[Path], tmp_path: Path) -> None:
    gallery = tmp_path / "people"
    for name, photo in (("aaron", lfw_images[1]), ("aj", lfw_images[2]), ("marsha", lfw_images[3])):
        (gallery / name).mkdir(parents=True)
        (gallery / name / photo.name).write_bytes(photo.read_bytes())
    with _client(gallery) as client:
        body = client.post("/identify", files=_files(image=lfw_images[0])).json()
        assert body["match"] == "aaron" and body["candidates"][0]["name"] == "aaron"
        assert (gallery / ".faceverify-index.npz").is_file()  # the index the CLI keeps, made and reused
        again = client.post("/identify", files=_files(image=lfw_images[0]), params={"top": 3}).json()
        assert len(again["candidates"]) == 3 and again["probability"] == body["probability"]
    assert _client().post("/identify", files=_files(image=lfw_images[0])).status_code == 400


@pytest.mark.parametrize(("files", "status", "words"), [
    ({"a": ("a.txt", b"hello", "text/plain")}, 415, "a: unsupported type text/plain"),
    ({"a": ("a.jpg", b"not a jpeg at all", "image/jpeg")}, 400, "a: not an image Pillow can read"),
    ({"a": ("a.jpg", b"", "image/jpeg")}, 400, "a: empty file"),
])
def test_bad_uploads_are_one_line_json_errors(files: dict, status: int, words: str, client: TestClient,
                                              lfw_images: list[Path]) -> None:
    got = client.post("/verify", files={**files, "b": ("b.jpg", lfw_images[1].read_bytes(), "image/jpeg")})
    assert got.status_code == status and got.json() == {"error": words + got.json()["error"][len(words):]}
    assert got.json()["error"].startswith(words) and "\n" not in got.json()["error"] and "Traceback" not in got.text


def test_missing_field_no_face_and_size_limit(client: TestClient, lfw_images: list[Path], tmp_path: Path) -> None:
    got = client.post("/verify", files=_files(a=lfw_images[0]))
    assert got.status_code == 422 and got.json() == {"error": "missing or invalid field(s): b"}
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (90, 90, 90)).save(blank)
    got = client.post("/embed", files={"image": ("x.png", blank.read_bytes(), "image/png")})
    assert got.status_code == 400 and got.json() == {"error": "image: no face found"}
    small = _client(max_bytes=1000)
    got = small.post("/embed", files=_files(image=lfw_images[0]))
    assert got.status_code == 413 and "larger than the 1,000-byte limit" in got.json()["error"]


def test_api_key_guards_every_endpoint_but_health(lfw_images: list[Path]) -> None:
    locked = _client(api_key="s3cret")
    assert locked.get("/health").status_code == 200
    assert locked.get("/model").status_code == 401 and "API key" in locked.get("/model").json()["error"]
    assert locked.post("/embed", files=_files(image=lfw_images[0])).status_code == 401
    assert locked.get("/model", headers={"X-API-Key": "wrong"}).status_code == 401
    assert locked.get("/model", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_concurrent_requests_get_the_same_answers(client: TestClient, lfw_images: list[Path]) -> None:
    def ask(_: int) -> float:
        return client.post("/verify", files=_files(a=lfw_images[0], b=lfw_images[1])).json()["probability"]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(12)))
    assert len(set(answers)) == 1


def test_binding_beyond_loopback_warns() -> None:
    assert check_bind("127.0.0.1") is None and check_bind("localhost") is None
    assert "biometric" in check_bind("0.0.0.0")


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_real_server_answers_and_stops_cleanly(stop: signal.Signals, code: int, lfw_images: list[Path]) -> None:
    import httpx

    with running_server() as (url, server):
        got = httpx.post(f"{url}/verify", files=_files(a=lfw_images[0], b=lfw_images[1]), timeout=30)
        assert got.status_code == 200 and got.json()["same"] is True
        server.send_signal(stop)
        _, err = server.communicate(timeout=30)
    assert server.returncode == code, err
    assert "Traceback" not in err and f"on {url}" in err


@pytest.mark.slow
def test_the_page_compares_two_photos_in_a_real_browser(lfw_images: list[Path], tmp_path: Path) -> None:
    """Headless Chromium loads the page, picks two photos, presses Compare and shows the API's decision."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if IN_CI:
            pytest.fail("CI=true and no chromium/chromedriver: .ci/run installs them")
        pytest.skip("no headless browser here (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    with running_server() as (url, _):
        browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
        try:
            browser.get(url)
            assert browser.title == "faceverify"
            for field, photo in (("file-a", lfw_images[0]), ("file-b", lfw_images[2])):
                browser.find_element(By.ID, field).send_keys(str(photo))
            browser.find_element(By.ID, "compare").click()
            decision = WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "decision"))[0].text
            shown = browser.find_element(By.ID, "probability").text
            faces = browser.find_element(By.ID, "faces-a").text
        finally:
            browser.quit()
    cli = json.loads(invoke("compare", lfw_images[0], lfw_images[2], "--json", "--provider", "cpu").stdout)
    assert decision == ("same person" if cli["same"] else "different people")
    assert shown == f"{cli['probability']:.4f}" and faces.startswith("1 face found, used #0")
