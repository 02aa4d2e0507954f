"""The digest a version carries from its registration: what the router checks before it unpickles anything.

It must change with any byte, name or file of the model directory (MLmodel names the pickle and the
loader, so each file can change what loading runs) and ignore only what a downloading client writes.
"""

from __future__ import annotations

import hashlib

import pytest

from ticket_ab.registry import CLIENT_WRITTEN, RegistryError, model_digest


@pytest.fixture
def model(tmp_path):
    root = tmp_path / "model"
    (root / "nested").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "model.pkl").write_bytes(b"\x80\x05pickle bytes")
    (root / "nested" / "extra.txt").write_text("x")
    return root


def test_the_digest_is_sha256_over_each_files_path_and_own_sha256_in_path_order(model):
    lines = "".join(f"{rel}\0{hashlib.sha256((model / rel).read_bytes()).hexdigest()}\n"
                    for rel in sorted(["MLmodel", "model.pkl", "nested/extra.txt"]))
    assert model_digest(model) == hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.parametrize("change", ["byte", "added", "renamed", "removed"])
def test_any_change_to_the_files_changes_the_digest(model, change):
    before = model_digest(model)
    if change == "byte":
        (model / "model.pkl").write_bytes(b"\x80\x05pickle bytez")
    elif change == "added":
        (model / "sitecustomize.py").write_text("import os")
    elif change == "renamed":
        (model / "model.pkl").rename(model / "model2.pkl")
    else:
        (model / "nested" / "extra.txt").unlink()
    assert model_digest(model) != before


def test_files_a_downloading_client_writes_and_named_files_are_left_out(model):
    before = model_digest(model)
    for name in CLIENT_WRITTEN:
        (model / name).write_text("model_name: m\nmodel_version: '3'\n")
    (model / "router-cache.json").write_text("{}")
    assert model_digest(model, ignore=("router-cache.json",)) == before


def test_a_symbolic_link_in_the_directory_is_refused(model, tmp_path):
    (tmp_path / "elsewhere.pkl").write_bytes(b"code")
    (model / "model.pkl").unlink()
    (model / "model.pkl").symlink_to(tmp_path / "elsewhere.pkl")
    with pytest.raises(RegistryError, match="symbolic link"):
        model_digest(model)
