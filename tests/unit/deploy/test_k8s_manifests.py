"""deploy/k8s/ as the Kubernetes API server would take it: every document valid under one pinned Kubernetes
version's schemas, the router scaled and probed as the issue asks, and no secret value in any manifest.

No cluster runs here, so the manifests are checked by reading them, as tests/unit/test_compose.py checks
docker-compose.yml; tests/unit/deploy/test_k8s_matches_compose.py keeps them in step with compose.
"""

import copy
import re

import kubernetes_validate
import pytest
from compose_file import OWN, load, writable_mounts
from flask import Flask
from k8s_manifests import (
    ENV_SECRET,
    EXAMPLE_SECRETS,
    K8S,
    applied,
    container_ports,
    containers,
    documents,
    env,
    example_secrets,
    find,
    kustomization,
    mounts,
    pod_spec,
    workload_of,
)

from ops.stack import configdb, secret_files
from router import views
from router.configdb import SCHEMA
from ticket_ab.settings import get_settings

# The Kubernetes version whose OpenAPI schemas (as kubernetes-validate ships them) the manifests must satisfy.
KUBERNETES_VERSION = "1.37.0"
ROUTER = "router"
TASK_RUNNERS = ("airflow-scheduler", "airflow-worker")  # they read the router's request log
SECRETS_INIT = "secrets-init"


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return applied()


def _validate(doc: dict) -> str:
    return kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secrets():
    listed = kustomization()["resources"]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", EXAMPLE_SECRETS.name}
    assert sorted(listed) == sorted(on_disk), "list each manifest in kustomization.yaml (and only those)"
    assert kustomization()["namespace"] == find("Namespace", "ticket-ab")["metadata"]["name"]


def test_every_document_validates_strictly_against_the_pinned_kubernetes_schemas(docs):
    pinned = ".".join(KUBERNETES_VERSION.split(".")[:2])
    for doc in [*docs, *documents(EXAMPLE_SECRETS)]:
        assert _validate(doc) == pinned, f"{doc['kind']} {doc['metadata']['name']} checked against another version"


def test_strict_validation_rejects_a_misspelled_field(docs):
    broken = copy.deepcopy(find("Deployment", ROUTER, docs))
    container = pod_spec(broken)["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        _validate(broken)


def test_router_scales_on_cpu_from_two_replicas_and_keeps_one_through_disruptions(docs):
    deployment, hpa = find("Deployment", ROUTER, docs), find("HorizontalPodAutoscaler", ROUTER, docs)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": deployment["apiVersion"], "kind": "Deployment",
                                             "name": ROUTER}
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    assert hpa["spec"]["minReplicas"] >= len([s for s in load()["services"] if s.startswith(ROUTER)])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count; a re-apply must not reset it"
    assert containers([deployment])[ROUTER]["resources"]["requests"]["cpu"], "utilisation is usage over the request"
    pdb = find("PodDisruptionBudget", ROUTER, docs)
    assert pdb["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_router_is_ready_on_ready_and_alive_on_health_at_its_container_port(docs):
    router = containers(docs)[ROUTER]
    ports = container_ports(router)
    readiness, liveness = router["readinessProbe"]["httpGet"], router["livenessProbe"]["httpGet"]
    assert (readiness["path"], liveness["path"]) == ("/ready", "/health")
    port = int(env(router, docs)["TICKET_AB_PORT"].value)
    assert ports[readiness["port"]] == ports[liveness["port"]] == port == get_settings().router.port
    app = Flask(__name__)
    app.register_blueprint(views.bp)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert {"/ready", "/health"} <= routes, "the probes must hit routes the router serves"


def test_router_runs_as_composes_user_on_a_read_only_root(docs):
    deployment = find("Deployment", ROUTER, docs)
    context = pod_spec(deployment)["securityContext"]
    assert f"{context['runAsUser']}:{context['runAsGroup']}" == load()["services"][ROUTER]["user"]
    assert containers([deployment])[ROUTER]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_log_root_is_one_shared_claim_the_task_runners_mount_where_the_router_writes(docs):
    compose_path = writable_mounts(load()["services"][ROUTER])["request-logs"]
    router = mounts(find("Deployment", ROUTER, docs), containers(docs)[ROUTER])
    claim = router[compose_path]
    assert claim.startswith("pvc:")
    assert find("PersistentVolumeClaim", claim.removeprefix("pvc:"), docs)["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in TASK_RUNNERS:
        assert mounts(workload_of(name, docs), containers(docs)[name])[compose_path] == claim, name


def test_no_applied_manifest_holds_a_secret_or_a_placeholder(docs):
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created from .env, never applied from here"
    for name in kustomization()["resources"]:
        assert secret_files.PLACEHOLDER not in (K8S / name).read_text(), name


def test_every_secret_reference_names_a_key_of_the_example_secrets(docs):
    secrets = example_secrets()
    for name, container in containers(docs).items():
        for var, source in env(container, docs).items():
            if source.secret:
                assert source.key in secrets.get(source.secret, {}), f"{name}: {var} <- {source}"


def test_example_secrets_are_env_examples_placeholders_which_secrets_init_refuses(docs):
    """`--from-env-file=.env` makes ticket-ab-env: the example is .env.example itself, and secrets-init refuses
    every value it checks, as compose's does."""
    env_example = dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", (K8S.parents[1] / ".env.example").read_text(), re.M))
    secrets = example_secrets()
    assert secrets[ENV_SECRET] == env_example
    values = {key: value for secret in secrets.values() for key, value in secret.items()}
    args = containers(docs)[SECRETS_INIT]["args"]
    checked = args[args.index("--passwords-file") + 2:]
    assert secret_files.placeholders(values, checked) == [
        f"{name} still holds the .env.example placeholder" for name in checked]
    derived = [v for name, secret in secrets.items() if name != ENV_SECRET for v in secret.values()]
    assert all(secret_files.PLACEHOLDER in value or not value for value in derived)


def test_readme_creates_every_key_of_every_secret():
    readme = (K8S / "README.md").read_text()
    assert f"create secret generic {ENV_SECRET} --from-env-file=.env" in readme
    for name, keys in example_secrets().items():
        if name != ENV_SECRET:
            assert f"create secret generic {name}" in readme
            assert all(f"--from-literal={key}=" in readme for key in keys), name


def test_postgres_creates_composes_databases_and_the_routers_config_store(docs):
    script = "".join(find("ConfigMap", "postgres-init", docs)["data"].values())
    postgres = mounts(find("StatefulSet", "postgres", docs), containers(docs)["postgres"])
    assert postgres["/docker-entrypoint-initdb.d"] == "configMap:postgres-init"
    compose_init = load()["configs"]["postgres-init"]["content"]
    assert all(line in script for line in compose_init.splitlines())
    assert all(f"{statement};" in script for statement in SCHEMA), "the tables as router/configdb.py creates them"
    assert f"GRANT CONNECT ON DATABASE \"{configdb.DATABASE}\" TO {configdb.ROLE};" in script
    store = env(containers(docs)[ROUTER], docs)["TICKET_AB_CONFIG_STORE"].value
    assert store == f"postgresql://{configdb.ROLE}@postgres:5432/{configdb.DATABASE}"


def test_volumes_init_gives_each_claim_to_the_uid_compose_gives_it(docs):
    compose_init = load()["services"]["volumes-init"]
    compose_at = {path: volume for volume, path in writable_mounts(compose_init).items()}
    compose_owner = {compose_at[path]: (uid, gid) for uid, gid, path in OWN.findall("\n".join(compose_init["command"]))}
    init = containers(docs)["volumes-init"]
    claim_at = mounts(workload_of("volumes-init", docs), init)
    owner = {claim_at[path].removeprefix("pvc:"): (uid, gid) for uid, gid, path in OWN.findall(init["args"][0])}
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert set(owner) == claims, "volumes-init must own every claim"
    assert all(owner[claim] == compose_owner[claim] for claim in claims)
