"""docker compose is the production path and no Docker engine runs here: check it by reading it."""

import re
from pathlib import Path

import pytest
import yaml

from retrain.contracts.settings import env_names, get_settings

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pycaret", "apache-airflow", "evidently", "cleanlab", "lightgbm")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_service_has_an_image_or_a_build_with_an_existing_dockerfile(compose):
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            assert (REPO / service["build"]["dockerfile"]).is_file(), name


def test_compose_variables_are_settings_fields(compose):
    known = set(env_names().values())
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for var in env:
            if var.startswith("TICKET_AB_") or var.startswith("MLFLOW_"):
                assert var in known, f"{name}: {var} is not read by retrain/settings.py"


def test_router_port_and_bind_agree_with_its_settings(compose):
    router = compose["services"]["router"]
    port = router["environment"]["TICKET_AB_PORT"]
    assert any(mapping.endswith(f":{port}:{port}") for mapping in router["ports"])
    assert router["environment"]["TICKET_AB_HOST"] == "0.0.0.0"
    assert router["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert get_settings().router.port == int(port)


def test_pipeline_talks_to_the_compose_mlflow(compose):
    mlflow = compose["services"]["mlflow"]
    assert "--port=5000" in mlflow["command"]
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        assert compose["services"][name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_router_writes_only_to_its_log_and_state_volumes(compose):
    router = compose["services"]["router"]
    assert router["read_only"] is True
    targets = {volume.split(":")[1] for volume in router["volumes"]}
    assert targets == {"/data/logs", "/data/router"}
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, source


def test_airflow_reads_the_logs_the_router_writes(compose):
    router_logs = next(v for v in compose["services"]["router"]["volumes"] if v.endswith(":/data/logs"))
    scheduler = compose["services"]["airflow-scheduler"]
    assert router_logs in scheduler["volumes"]
    assert scheduler["environment"]["TICKET_AB_HOME"] == "/data"


def test_every_required_secret_is_in_env_example():
    text = (REPO / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = (REPO / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    assert required and required <= defined, required - defined


def test_router_image_is_slim_non_root_with_healthcheck():
    dockerfile = (REPO / "Dockerfile.flask").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install -r router/requirements.txt" in dockerfile
    assert re.search(r"^USER router$", dockerfile, flags=re.M)
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    cmd = re.search(r'^CMD \[(.*)\]$', dockerfile, flags=re.M).group(1)
    assert "router/gunicorn.conf.py" in cmd and "router.wsgi:app" in cmd
    assert (REPO / "router" / "gunicorn.conf.py").is_file() and (REPO / "router" / "wsgi.py").is_file()


def test_airflow_image_is_the_pinned_airflow_with_the_pipeline_pins():
    dockerfile = (REPO / "Dockerfile.airflow").read_text()
    assert "FROM apache/airflow:3.2.2-python3.11" in dockerfile
    assert "requirements.txt" in dockerfile
    assert _pins(REPO / "requirements.txt")["apache-airflow"] == "3.2.2"


def test_router_requirements_are_main_pins_without_training_packages():
    router = _pins(REPO / "router" / "requirements.txt")
    main = _pins(REPO / "requirements.txt")
    assert {"flask", "gunicorn", "mlflow-skinny", "scikit-learn"} <= set(router)
    for heavy in HEAVY:
        assert heavy not in router, heavy
    for package, version in router.items():
        assert main.get(package) == version, f"{package}=={version} differs from requirements.txt"
