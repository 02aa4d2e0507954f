"""Registration records the digest of the files the registry serves: what a router downloads by version hashes to
exactly the tag the registration call wrote (a real MLflow server with proxied artifacts)."""

from __future__ import annotations

import pandas as pd

from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab import registry
from ticket_ab.registry import ARTIFACT_DIGEST_TAG, ServingRegistry

EXAMPLE = pd.DataFrame({"text": ["vpn drops every hour", "printer is jammed"]})


def test_a_published_version_carries_the_digest_of_the_files_a_router_downloads(mlflow_server, make_settings,
                                                                                 tmp_path):
    settings = make_settings(tracking_uri=mlflow_server.uri)
    version = registry.publish(settings.tracking_uri, settings.model_name, fitted_pipeline(seed=0), EXAMPLE,
                               alias="champion", why="digest test", tags={"purpose": "digest-test"})
    recorded = registry.connect(settings.tracking_uri).get_model_version(settings.model_name, version).tags
    assert len(recorded[ARTIFACT_DIGEST_TAG]) == 64 and recorded["purpose"] == "digest-test"
    serving = ServingRegistry(settings.tracking_uri, settings.model_name)
    state = serving.state()
    assert state.aliases["champion"].digest == recorded[ARTIFACT_DIGEST_TAG]
    downloaded = serving.download(version, tmp_path / "download")
    assert registry.model_digest(downloaded) == recorded[ARTIFACT_DIGEST_TAG]
    (downloaded / "model.pkl").write_bytes((downloaded / "model.pkl").read_bytes() + b"\0")
    assert registry.model_digest(downloaded) != recorded[ARTIFACT_DIGEST_TAG]
