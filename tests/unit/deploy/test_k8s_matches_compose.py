"""deploy/k8s/ runs what docker-compose.yml runs: for each compose service with a Kubernetes counterpart (a
workload whose container bears the service's name), the same image, command, container ports, mount paths
and environment variable names, secrets from Secrets, and the plain values compose states (or its defaults).

Where the two differ by design, the difference is listed here with its reason; anything else is drift.
"""

import re

import pytest
from compose_file import load
from k8s_manifests import (
    ENV_SECRET,
    K8S,
    applied,
    container_ports,
    containers,
    env,
    find,
    mounts,
    workload_of,
)

# Compose services with no workload of their own here, and why.
NOT_PORTED = {
    "router-2": "the router Deployment's replicas, scaled by its HorizontalPodAutoscaler",
    "prometheus": "left out: a cluster's own Prometheus scrapes the router Service",
    "grafana": "left out with Prometheus",
}
# Variables only the Kubernetes side has: the routers' A/B config lives in PostgreSQL (a SQLite file on a
# shared volume, as compose has it, is one host only), so the routers get its role's password (libpq reads
# PGPASSWORD), PostgreSQL creates that role, and secrets-init checks that password too.
EXTRA_ENV = {"router": {"PGPASSWORD"}, "postgres": {"ROUTER_CONFIG_PASSWORD"},
             "secrets-init": {"ROUTER_CONFIG_PASSWORD"}}
EXTRA_ARGS = {"secrets-init": ["ROUTER_CONFIG_PASSWORD"]}
# Values that differ on purpose: that config store, and the executor (compose's default is LocalExecutor, with
# CeleryExecutor as its `celery` profile; here Celery always, so workers scale out as pods).
OWN_VALUES = {"TICKET_AB_CONFIG_STORE", "AIRFLOW__CORE__EXECUTOR"}
# Ports compose's services listen on without publishing them: its network reaches them as these.
UNPUBLISHED = {"postgres": {5432}, "redis": {6379}}
# The compose mount with no counterpart: the routers' config volume (the config is in PostgreSQL here); and the
# volume that is each pod's own emptyDir: the per-replica router state (compose has one volume per replica).
UNMOUNTED = {"/data/config"}
PER_POD = {"router-state"}
# The secrets, by their .env names: those secrets-init checks, and the two that may be empty.
OPTIONAL_SECRETS = {"AIRFLOW_FERNET_KEY", "TICKET_AB_ALERT_URLS"}
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")
DEFAULT = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}$")
URL_HOST = re.compile(r"://(?:[^@/]*@)?([a-z][a-z0-9-]*):(\d+)")
# volumes-init mounts and chowns the volumes of its own topology (compose has volumes that are no claims here);
# test_k8s_manifests.py checks that it gives each claim compose's owner.
OWN_SCRIPT = {"volumes-init"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load()


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return applied()


@pytest.fixture(scope="module")
def envs(docs) -> dict[str, dict]:
    """Container name -> its variables and their sources."""
    return {name: env(container, docs) for name, container in containers(docs).items()}


@pytest.fixture(scope="module")
def ported(compose) -> list[str]:
    return [name for name in compose["services"] if name not in NOT_PORTED]


def _secrets(compose: dict) -> set[str]:
    command = compose["services"]["secrets-init"]["command"]
    return set(command[command.index("--passwords-file") + 2:]) | OPTIONAL_SECRETS


def test_every_compose_service_has_a_counterpart_or_a_reason(compose, docs):
    assert set(containers(docs)) == set(compose["services"]) - set(NOT_PORTED)


def test_same_images(compose, docs, ported):
    for name in ported:
        assert containers(docs)[name]["image"] == compose["services"][name]["image"], name


def test_same_entrypoints_and_commands(compose, docs, ported):
    """compose's `entrypoint` is Kubernetes' `command`, its `command` Kubernetes' `args`."""
    for name in ported:
        service, container = compose["services"][name], containers(docs)[name]
        assert container.get("command") == service.get("entrypoint"), name
        if name not in OWN_SCRIPT:
            assert container.get("args", []) == service.get("command", []) + EXTRA_ARGS.get(name, []), name


def test_same_container_ports(compose, docs, ported):
    for name in ported:
        published = {int(p.split(":")[-1]) for p in compose["services"][name].get("ports", [])}
        assert set(container_ports(containers(docs)[name]).values()) == published | UNPUBLISHED.get(name, set()), name


def test_every_host_compose_urls_name_is_a_service_on_the_same_port(compose, docs):
    """Services bear compose's names, so `http://mlflow:5000` and `postgres:5432` mean the same in both."""
    text = "\n".join(str(v) for s in compose["services"].values() for v in (s.get("environment") or {}).values())
    hosts = set(URL_HOST.findall(text))
    assert {host for host, _ in hosts} >= {"mlflow", "postgres", "redis", "airflow-apiserver", "router"}
    for host, port in hosts:
        service = find("Service", host, docs)
        target = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}[int(port)]
        pods = workload_of(host, docs)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pods.items(), host
        assert container_ports(containers(docs)[host])[target] == int(port), host


def test_same_environment_names(compose, envs, ported):
    for name in ported:
        expected = set(compose["services"][name].get("environment") or {}) | EXTRA_ENV.get(name, set())
        assert set(envs[name]) == expected, name


def _compose_env(compose: dict, ported: list[str]) -> list[tuple[str, str, str]]:
    return [(name, var, str(value)) for name in ported
            for var, value in (compose["services"][name].get("environment") or {}).items()]


def _readme_literals() -> dict[str, str]:
    """The `--from-literal=KEY="..."` values README.md builds the derived Secrets from (shell, after sourcing .env)."""
    return dict(re.findall(r'--from-literal=([A-Z_][A-Z0-9_]*)="([^"]*)"', (K8S / "README.md").read_text()))


def test_what_compose_fills_from_a_secret_comes_from_a_secret_made_of_the_same_env(compose, envs, ported):
    """.env's own key when compose's value is that one variable; else a key README.md builds as compose does."""
    secrets, literals = _secrets(compose), _readme_literals()
    for name, var, value in _compose_env(compose, ported):
        if not set(REFERENCE.findall(value)) & secrets:
            continue
        source = envs[name][var]
        assert source.secret, f"{name}: {var} must come from a Secret"
        if source.secret == ENV_SECRET:
            whole = REFERENCE.fullmatch(value)
            assert whole and source.key == whole.group(1), f"{name}: {var} is {source}, compose says {value}"
        else:
            assert literals[source.key] == REFERENCE.sub(r"$\1", value), f"{name}: {var}"


def test_plain_values_are_composes_values_or_its_defaults(compose, envs, ported):
    secrets = _secrets(compose)
    for name, var, value in _compose_env(compose, ported):
        if var in OWN_VALUES or set(REFERENCE.findall(value)) & secrets:
            continue
        source = envs[name][var]
        if source.secret:  # a setting .env holds though it is no secret (POSTGRES_USER): the same key
            whole = REFERENCE.fullmatch(value)
            assert source.secret == ENV_SECRET and whole and source.key == whole.group(1), f"{name}: {var}"
        else:
            default = DEFAULT.fullmatch(value)
            assert source.value == (default.group(1) if default else value), f"{name}: {var} is {source.value}"


def test_same_mount_paths(compose, docs, ported):
    """Each compose mount path is mounted here too: from a claim of the volume's name, or an emptyDir (PER_POD)."""
    for name in set(ported) - OWN_SCRIPT:
        here = mounts(workload_of(name, docs), containers(docs)[name])
        service = compose["services"][name]
        wanted = {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}
        for path, volume in wanted.items():
            if path in UNMOUNTED:
                continue
            expected = {"emptyDir"} if volume in PER_POD else {f"pvc:{volume}", f"template:{volume}"}
            assert here.get(path) in expected, f"{name}: {path} is {here.get(path)}"
