"""Finding the Triton server to run (fusionrt.serving.server.find_install) and free loopback ports."""

from __future__ import annotations

import socket
import venv

import pytest

from fusionrt.serving import server


def test_an_environment_without_nvidia_pytriton_is_refused_with_what_to_do(tmp_path, monkeypatch):
    venv.create(tmp_path / "env", with_pip=False)
    with pytest.raises(RuntimeError, match="no nvidia-pytriton there.*make serve-env"):
        server.find_install(tmp_path / "env")
    monkeypatch.setenv(server.ENV_VARIABLE, str(tmp_path / "missing"))
    monkeypatch.setattr(server, "checkout_env", lambda: tmp_path / "also-missing")
    monkeypatch.setenv("PATH", str(tmp_path))  # no tritonserver on PATH either
    with pytest.raises(RuntimeError) as error:
        server.find_install()
    assert str(tmp_path / "missing") in str(error.value) and str(tmp_path / "also-missing") in str(error.value)


def test_the_serve_environment_has_the_server_and_this_pythons_stub():
    env = server.checkout_env()
    if not (env / "bin" / "python").exists():
        pytest.skip(f"no serve environment at {env} (make serve-env)")
    install = server.find_install(env)
    assert install.binary.is_file() and (install.python_backend / "libtriton_python.so").is_file()
    assert install.stub is not None and install.stub.parent.name.startswith("3.")


def test_free_ports_are_distinct_and_bindable():
    ports = server.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
