"""docker-compose.yml: valid Compose, every image pinned, secrets only from .env, parts wired as documented."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dashboards.generate import GRAFANA_PROVISIONING_MOUNT, PROVISIONING_DIR
from dashboards.model import GRAFANA_VERSION
from ecgmon.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json").read_text())
_SECRET_KEY = re.compile(r"(TOKEN|PASSWORD|SECRET|CLUSTER_ID)$")
_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load("docker-compose.yml")


@pytest.mark.parametrize("name", ["docker-compose.yml", "deploy/compose.gpu.yml"])
def test_compose_files_follow_the_compose_specification(name: str) -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(_load(name))


def test_the_schema_rejects_a_broken_file() -> None:
    broken = {"services": {"worker": {"image": "ecgmon:0.1.0", "deploy": {"resources": {"reservations": {"gpus": 1}}}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image tag"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, f"{name}: {image} is not pinned"
        if "build" not in service:
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {image} must pin an exact x.y.z release"
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert bases and all(re.search(r":\d+\.\d+\.\d+", b) for b in bases), bases


def test_grafana_tag_matches_the_version_the_dashboards_target(compose: dict[str, Any]) -> None:
    assert compose["services"]["grafana"]["image"] == f"grafana/grafana-oss:{GRAFANA_VERSION}"
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./{PROVISIONING_DIR.relative_to(ROOT)}:{GRAFANA_PROVISIONING_MOUNT}:ro" in mounts


def _walk_env(compose: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use a mapping for environment"
        out += [(name, key, str(value)) for key, value in env.items()]
    return out


def test_secrets_come_only_from_the_env_file(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for service, key, value in _walk_env(compose):
        if _SECRET_KEY.search(key):
            assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), f"{service}.{key} must be a required ${{VAR:?}}"
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required, "the compose file should require its secrets"
    for var in required:
        assert var in example, f"{var} is required by docker-compose.yml but missing from .env.example"
        assert "change-me" in example[var], f".env.example must hold a placeholder for {var}, not a value"
    for var in set(_REF.findall(text)) - required:
        assert var in example, f"{var} is used by docker-compose.yml but not documented in .env.example"


def test_ecgmon_variables_are_real_settings(compose: dict[str, Any]) -> None:
    known = {f"ECGMON_{name.upper()}" for name in Settings.model_fields}
    for service, key, _ in _walk_env(compose):
        if key.startswith("ECGMON_") and service in ("worker", "simulator"):
            assert key in known, f"{service}.{key} is not a setting"
    example_keys = [
        line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if line.startswith("ECGMON_")
    ]
    assert set(example_keys) <= known


def test_gpu_lives_in_the_override_and_the_stack_is_wired(compose: dict[str, Any]) -> None:
    assert "deploy" not in compose["services"]["worker"], "a GPU reservation in the base file breaks CPU hosts"
    gpu = _load("deploy/compose.gpu.yml")["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu[0]["capabilities"] == ["gpu"]
    worker = compose["services"]["worker"]
    assert worker["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert compose["services"]["simulator"]["profiles"] == ["simulate"]
    topics = compose["services"]["topic-init"]["environment"]["TOPICS"].split()
    assert topics == Settings().topics()
    kafka = compose["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller" and kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    influx = compose["services"]["influxdb"]
    assert influx["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"].startswith("${ECGMON_INFLUX_DATABASE")
    init = ROOT / "deploy" / "influxdb-init" / "10-dbrp.sh"
    assert "./deploy/influxdb-init:/docker-entrypoint-initdb.d:ro" in influx["volumes"]
    assert "influx v1 dbrp create" in init.read_text()


def _compose_argv() -> list[str] | None:
    """A working Compose v2 command here, or None (the docker CLI may lack the compose plugin)."""
    for argv in (["docker-compose"], ["docker", "compose"]):
        if (
            shutil.which(argv[0])
            and subprocess.run([*argv, "version"], capture_output=True, timeout=30).returncode == 0
        ):
            return argv
    return None


def test_compose_binary_accepts_the_files(tmp_path: Path) -> None:
    argv = _compose_argv()
    if argv is None:
        pytest.skip("no Compose v2 binary here; the schema test above still validates the files")
    env = tmp_path / "test.env"
    env.write_text((ROOT / ".env.example").read_text())
    for extra in ([], ["-f", "deploy/compose.gpu.yml"]):
        cmd = [*argv, "--env-file", str(env), "-f", "docker-compose.yml", *extra, "config", "--quiet"]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", ["deploy/create-topics.sh", "deploy/influxdb-init/10-dbrp.sh"])
def test_init_scripts_are_executable_bash(script: str) -> None:
    path = ROOT / script
    assert os.access(path, os.X_OK), f"{script} must be executable"
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
