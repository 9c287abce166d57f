"""Starting and stopping NVIDIA Triton Inference Server on a model repository, on free loopback ports.

Where the server comes from (:func:`find_install`), first found wins:

1. ``env``, or the ``FUSIONRT_SERVE_ENV`` variable: a Python environment (virtualenv) with the
   ``nvidia-pytriton`` wheel, whose ``tritonserver`` binary and Python backend this uses. That wheel
   pins numpy below 2, so it lives in its own environment: ``make serve-env`` makes ``.venv-serve``
   in a fusionrt checkout, which is found next;
2. ``.venv-serve`` in the checkout this fusionrt runs from (an editable install);
3. a ``tritonserver`` on ``PATH`` with ``/opt/tritonserver/backends`` (NGC's Triton container, Jetson's
   Triton release), whose models then run in the Python it ships.

The Python backend runs each model in a stub process with its own embedded Python, which finds its
environment through the ``python3`` first on ``PATH``: the environment's ``bin`` is put first, so its
``site-packages`` (and ``.pth`` files there, an editable fusionrt's included) are the models'. The
wheel's stub for that Python version is copied beside the Python backend in a private folder.

Example:
    >>> with start("repo") as server:  # doctest: +SKIP
    ...     print(server.http_url)
    127.0.0.1:40123
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ENV_VARIABLE = "FUSIONRT_SERVE_ENV"
#: The serve environment ``make serve-env`` creates in a checkout.
CHECKOUT_ENV = ".venv-serve"
SYSTEM_BACKENDS = Path("/opt/tritonserver/backends")


@dataclass(frozen=True)
class TritonInstall:
    """A ``tritonserver`` binary and what its Python backend needs.

    ``python_backend`` is the folder holding ``libtriton_python.so``; ``stub`` the
    ``triton_python_backend_stub`` to put beside it (None: it is there already); ``site_packages`` the
    model environment's packages (None: the server's own Python); ``libraries`` folders the binaries'
    shared libraries are in.
    """

    binary: Path
    python_backend: Path
    stub: Path | None = None
    site_packages: Path | None = None
    libraries: tuple[Path, ...] = ()


def _site_packages(env: Path) -> Path | None:
    found = sorted(env.glob("lib/python3*/site-packages"))
    return found[0] if found else None


def _pytriton_install(site: Path) -> TritonInstall | None:
    server = site / "pytriton" / "tritonserver"
    binary = server / "bin" / "tritonserver"
    if not binary.is_file():
        return None
    version = site.parent.name.removeprefix("python")  # lib/python3.11/site-packages
    stub = server / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise RuntimeError(f"the nvidia-pytriton in {site} has no Python backend stub for Python {version} ({stub})")
    return TritonInstall(binary, server / "backends" / "python", stub, site, (site / "nvidia_pytriton.libs",))


def checkout_env() -> Path:
    """Where ``make serve-env`` puts the serve environment for the checkout this fusionrt runs from."""
    return Path(__file__).resolve().parents[3] / CHECKOUT_ENV


def find_install(env: str | os.PathLike[str] | None = None) -> TritonInstall:
    """The Triton server to run (see the module docstring for the order).

    Raises:
        RuntimeError: none was found, saying where it looked and how to get one.
    """
    looked = []
    candidates = [Path(env)] if env is not None else []
    if env is None and os.environ.get(ENV_VARIABLE):
        candidates.append(Path(os.environ[ENV_VARIABLE]))
    if env is None:
        candidates.append(checkout_env())
    for candidate in candidates:
        site = _site_packages(candidate)
        install = _pytriton_install(site) if site is not None else None
        if install is not None:
            return install
        looked.append(f"{candidate} (no nvidia-pytriton there)")
        if env is not None:
            break
    binary = shutil.which("tritonserver")
    if env is None and binary and (SYSTEM_BACKENDS / "python").is_dir():
        return TritonInstall(Path(binary), SYSTEM_BACKENDS / "python")
    looked.append("tritonserver on PATH with /opt/tritonserver/backends/python")
    raise RuntimeError(
        "no Triton Inference Server found; looked in " + "; ".join(looked) +
        f". Run `make serve-env` in a fusionrt checkout, or set {ENV_VARIABLE} to a virtualenv with "
        "`pip install nvidia-pytriton 'numpy<2' fusionrt[onnx]`, or use NGC's Triton container"
    )


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on loopback now (the OS's choice)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class TritonServer:
    """A running ``tritonserver``: its ports, log file and process. :meth:`stop` ends it."""

    process: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_port: int
    log: Path
    workdir: Path
    _owns_workdir: bool = field(default=True, repr=False)

    @property
    def http_url(self) -> str:
        """``host:port`` of the KServe v2 HTTP endpoint (what ``tritonclient.http`` takes)."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the KServe v2 gRPC endpoint."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """The Prometheus metrics URL."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def ready(self) -> bool:
        """Whether the server says it is ready (every model loaded)."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 30.0) -> int:
        """Asks the server to stop (SIGINT, as Ctrl-C), kills it after ``timeout`` s; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _prepare(install: TritonInstall, workdir: Path) -> tuple[Path, dict[str, str]]:
    """The backends folder to pass and the server's environment variables."""
    environment = dict(os.environ)
    libraries = [str(p) for p in install.libraries if p.is_dir()]
    if libraries:
        # The wheel's binaries find these through rpaths relative to where they lie; the copied stub
        # and backend library do not lie there, so name the folder.
        environment["LD_LIBRARY_PATH"] = os.pathsep.join([*libraries, environment.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    if install.stub is None:
        return install.python_backend.parent, environment
    backend = workdir / "backends" / "python"
    backend.mkdir(parents=True)
    for item in install.python_backend.iterdir():
        if item.is_file():
            shutil.copy2(item, backend / item.name)
    shutil.copy2(install.stub, backend / install.stub.name)
    if install.site_packages is not None:
        # The stub embeds Python with an isolated config (PYTHONPATH is ignored) and finds its prefix
        # from the `python3` on PATH: the environment's, whose pyvenv.cfg adds its site-packages.
        python_bin = install.site_packages.parents[2] / "bin"
        environment["PATH"] = os.pathsep.join([str(python_bin), environment.get("PATH", "")])
    return backend.parent, environment


def start(
    repository: str | os.PathLike[str],
    *,
    env: str | os.PathLike[str] | None = None,
    ports: tuple[int, int, int] | None = None,
    host: str = "127.0.0.1",
    timeout: float = 180.0,
    log: str | os.PathLike[str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> TritonServer:
    """Starts ``tritonserver`` on ``repository`` and waits until it is ready.

    Args:
        ports: (http, grpc, metrics); None picks free loopback ports.
        host: the address the endpoints listen on (loopback unless you mean to serve others).
        timeout: seconds to wait for readiness (every model loaded).
        log: the server's log file; None writes it in a temporary folder removed by :meth:`~TritonServer.stop`.

    Raises:
        RuntimeError: no server was found, or it exited or was not ready in time (with its log's tail).
    """
    install = find_install(env)
    repository = Path(repository).resolve()
    if not repository.is_dir():
        raise FileNotFoundError(f"model repository {repository} does not exist")
    workdir = Path(tempfile.mkdtemp(prefix="fusionrt-triton-"))
    try:
        backends, environment = _prepare(install, workdir)
        http, grpc, metrics = ports or free_ports(3)
        log_path = Path(log) if log is not None else workdir / "tritonserver.log"
        command = [
            str(install.binary), f"--model-repository={repository}", f"--backend-directory={backends}",
            f"--http-address={host}", f"--http-port={http}", f"--grpc-address={host}", f"--grpc-port={grpc}",
            f"--metrics-address={host}", f"--metrics-port={metrics}", "--allow-metrics=true",
            "--allow-gpu-metrics=false", "--exit-timeout-secs=10", *extra_args,
        ]
        with open(log_path, "wb") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment,
                                       stdin=subprocess.DEVNULL)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    server = TritonServer(process, http, grpc, metrics, log_path, workdir)
    deadline = time.monotonic() + timeout
    while not server.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            why = f"exited with code {process.returncode}" if process.poll() is not None else f"not ready after {timeout:.0f} s"
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"tritonserver {why} on {repository}; its log ends:\n{tail}")
        time.sleep(0.25)
    return server


@contextlib.contextmanager
def running(repository: str | os.PathLike[str], **kwargs: object) -> Iterator[TritonServer]:
    """:func:`start` as a context manager that stops the server on exit."""
    server = start(repository, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


__all__ = ["ENV_VARIABLE", "TritonInstall", "TritonServer", "checkout_env", "find_install", "free_ports",
           "running", "start"]
