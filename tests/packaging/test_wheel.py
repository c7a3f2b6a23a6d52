"""Herald installed as an operator installs it: a wheel built with `python -m build`, put into
a fresh virtual environment far from any checkout, then `herald migrate`, `herald serve` and
`herald worker` run from there. A second package that also ships a top-level `app` is
installed beside it and removed again, and Herald still runs: its import package is
herald_server, not the generic name of the folder it is built from."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
# Generous: building and installing on a busy CI machine, from pip's cache.
STEP_TIMEOUT = 600
START_TIMEOUT = 60


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - our own interpreter and tools, fixed arguments
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def checkout_copy(into: Path) -> Path:
    """The files git tracks, so the wheel holds what a clean clone would build."""
    listed = run("git", "ls-files", "-z", cwd=ROOT).split("\0")
    for name in filter(None, listed):
        source, target = ROOT / name, into / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return into


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = checkout_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", out, source, cwd=source)
    (built,) = out.glob("herald_server-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with the locked dependencies (as the image installs them) and the
    wheel; nothing from this checkout is importable in it."""
    home = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", home / "venv", cwd=home)
    pip = home / "venv" / "bin" / "pip"
    run(pip, "install", "--require-hashes", "-r", ROOT / "requirements.lock", cwd=home)
    run(pip, "install", "--no-deps", wheel, cwd=home)
    run(pip, "check", cwd=home)
    return home / "venv"


def clean_env(workdir: Path) -> dict[str, str]:
    """No PYTHONPATH, no HERALD_* of the developer's: only what an operator would set."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "PYTHONUNBUFFERED": "1",
        "HERALD_JWT_SECRET": "wheel-test-secret-" + "w" * 32,
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_the_wheel_ships_the_package_its_pages_and_its_migrations(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "herald_server/cli.py" in names
    assert "herald_server/static/herald.js" in names
    assert "herald_server/static/herald/bell.js" in names
    assert "herald_server/migrations/sqlite/0001_initial.sql" in names
    assert "herald_server/migrations/postgresql/0001_initial.sql" in names
    assert not any(name.startswith(("app/", "tests/", "static/", "migrations/")) for name in names)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_version_is_the_package_version(venv: Path, workdir: Path) -> None:
    from herald_server import __version__

    printed = run(venv / "bin" / "herald", "--version", cwd=workdir, env=clean_env(workdir))

    assert printed.strip() == f"herald {__version__}"


def herald_process(venv: Path, workdir: Path, *args: str) -> subprocess.Popen[str]:
    """The installed console script, migrated first, running in `workdir`."""
    env = clean_env(workdir)
    run(venv / "bin" / "herald", "migrate", cwd=workdir, env=env)
    return subprocess.Popen(  # noqa: S603 - the installed console script
        [str(venv / "bin" / "herald"), *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def served(venv: Path, workdir: Path) -> Iterator[str]:
    port = free_port()
    with herald_process(venv, workdir, "serve", "--port", str(port)) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=START_TIMEOUT)
            finally:
                if process.poll() is None:
                    process.kill()


def wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"herald serve exited {process.returncode}: {process.stderr}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("herald serve did not become healthy")


def test_an_installed_wheel_migrates_and_serves_its_pages(served: str, workdir: Path) -> None:
    assert (workdir / "herald.db").is_file()
    for path, marker in (
        ("/", "herald-bell"),
        ("/admin", "<title>"),
        ("/static/herald.js", "HeraldClient"),
        ("/static/herald/client.js", "EventSource"),
        ("/openapi.json", '"openapi"'),
        ("/docs", "swagger-ui"),
        ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "SwaggerUIBundle"),
    ):
        response = httpx.get(served + path, timeout=10)
        assert response.status_code == 200, path
        assert marker in response.text, path


def test_an_installed_worker_starts_and_stops(venv: Path, workdir: Path) -> None:
    """Stopped as soon as it says it delivers: a SIGTERM during its first look at the store
    once hung its shutdown."""
    with herald_process(venv, workdir, "worker") as process:
        try:
            assert process.stderr is not None
            ready, _, _ = select.select([process.stderr], [], [], START_TIMEOUT)
            first = process.stderr.readline() if ready else "(nothing)"
            assert first.startswith("herald: worker delivering by"), first
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=START_TIMEOUT) == 0
        finally:
            if process.poll() is None:
                process.kill()


def dummy_app_wheel(into: Path) -> Path:
    """Some other distribution with a top-level `app` package, as many projects ship."""
    source = into / "other"
    (source / "app").mkdir(parents=True)
    (source / "app" / "__init__.py").write_text("NOT_HERALD = True\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "some-other-app"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["app"]\n'
    )
    run(sys.executable, "-m", "build", "--wheel", "--outdir", into, source, cwd=source)
    (built,) = into.glob("some_other_app-*.whl")
    return built


def test_another_package_shipping_app_cannot_clobber_herald(
    venv: Path, workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = dummy_app_wheel(tmp_path_factory.mktemp("other"))
    pip, herald = venv / "bin" / "pip", venv / "bin" / "herald"
    env = clean_env(workdir)
    both = "import app, herald_server.main; print(app.NOT_HERALD)"

    run(pip, "install", "--no-deps", other, cwd=workdir)
    assert run(venv / "bin" / "python", "-c", both, cwd=workdir, env=env).strip() == "True"
    assert run(herald, "token", "--sub", "alice", cwd=workdir, env=env).count(".") == 2
    run(pip, "uninstall", "--yes", "some-other-app", cwd=workdir)

    assert run(herald, "token", "--sub", "alice", cwd=workdir, env=env).count(".") == 2
    assert list(venv.glob("lib/python3.*/site-packages/herald_server/main.py"))
