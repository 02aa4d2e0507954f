"""Test helper: deploy/k8s/ as data: the documents `kubectl apply -k` would apply, their pods' containers,
and where each container's environment variables come from (a literal, or a Secret's key)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
EXAMPLE_SECRETS = K8S / "secrets.example.yaml"
ENV_SECRET = "ticket-ab-env"  # `kubectl create secret generic ticket-ab-env --from-env-file=.env`: .env as it is
WORKLOADS = ("Deployment", "StatefulSet", "Job")


@dataclass(frozen=True)
class Source:
    """Where one environment variable's value comes from: `value`, or the Secret `secret`'s `key`."""

    value: str | None = None
    secret: str | None = None
    key: str | None = None


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def applied() -> list[dict]:
    """Every document of every file kustomization.yaml lists, in its order."""
    return [doc for name in kustomization()["resources"] for doc in documents(K8S / name)]


def find(kind: str, name: str, docs: list[dict] | None = None) -> dict:
    matches = [d for d in (applied() if docs is None else docs) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def example_secrets() -> dict[str, dict[str, str]]:
    """Secret name -> its keys and placeholder values, from secrets.example.yaml."""
    return {doc["metadata"]["name"]: doc["stringData"] for doc in documents(EXAMPLE_SECRETS)}


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(docs: list[dict]) -> dict[str, dict]:
    """Container name -> container, over every workload (each has one container, named after its compose service)."""
    found = {}
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            for container in pod_spec(doc)["containers"]:
                assert container["name"] not in found, f"two containers named {container['name']}"
                found[container["name"]] = container
    return found


def workload_of(name: str, docs: list[dict]) -> dict:
    """The workload whose container is `name`."""
    return next(d for d in docs if d["kind"] in WORKLOADS and name in {c["name"] for c in pod_spec(d)["containers"]})


def env(container: dict, docs: list[dict]) -> dict[str, Source]:
    """Each variable the container gets, with its source; `envFrom` ConfigMaps and Secrets resolved to their keys
    (a Secret's keys as secrets.example.yaml lists them)."""
    sources: dict[str, Source] = {}
    secrets = example_secrets()
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            data = find("ConfigMap", ref["configMapRef"]["name"], docs)["data"]
            sources |= {name: Source(value=value) for name, value in data.items()}
        else:
            secret = ref["secretRef"]["name"]
            sources |= {name: Source(secret=secret, key=name) for name in secrets[secret]}
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        sources[var["name"]] = Source(secret=ref["name"], key=ref["key"]) if ref else Source(value=var["value"])
    return sources


def container_ports(container: dict) -> dict[str, int]:
    """Port name -> container port."""
    return {port.get("name", str(port["containerPort"])): port["containerPort"] for port in container.get("ports", [])}


def mounts(workload: dict, container: dict) -> dict[str, str]:
    """Mount path -> `pvc:CLAIM`, `emptyDir`, `configMap:NAME` or `template:NAME` (a StatefulSet's claim)."""
    volumes = {}
    for volume in pod_spec(workload).get("volumes", []):
        if "persistentVolumeClaim" in volume:
            volumes[volume["name"]] = f"pvc:{volume['persistentVolumeClaim']['claimName']}"
        elif "configMap" in volume:
            volumes[volume["name"]] = f"configMap:{volume['configMap']['name']}"
        else:
            volumes[volume["name"]] = "emptyDir"
    for template in workload["spec"].get("volumeClaimTemplates", []):
        volumes[template["metadata"]["name"]] = f"template:{template['metadata']['name']}"
    return {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
