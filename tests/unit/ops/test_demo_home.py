"""`make demo` owns its folder: a stack in the same home is never touched, foreign files are refused."""

from __future__ import annotations

import pytest

from ops.demo import MARKER, DemoError, claim, demo_home
from ticket_ab.settings import get_settings


def _stack_home(home):
    """What `make stack` leaves in a home: its cluster and its secrets."""
    (home / "stack").mkdir(parents=True)
    (home / "stack" / "secrets.json").write_text('{"postgres": "s3cret"}')
    (home / "stack" / "postgres" / "data").mkdir(parents=True)
    (home / "stack" / "postgres" / "data" / "PG_VERSION").write_text("15\n")
    return {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}


def test_the_demo_home_is_a_folder_of_its_own_below_the_home(tmp_path):
    settings = get_settings(home=str(tmp_path))
    assert demo_home(settings) != settings.home
    assert demo_home(settings).parent == settings.home


def test_a_demo_after_a_stack_in_the_same_home_leaves_the_stack_untouched(tmp_path):
    stack_files = _stack_home(tmp_path)
    home = demo_home(get_settings(home=str(tmp_path)))
    claim(home)
    (home / "logs").mkdir()
    claim(home)  # a second demo wipes only the first demo's folder
    assert {p: p.read_bytes() for p in stack_files} == stack_files
    assert sorted(p.name for p in home.iterdir()) == [MARKER]


def test_the_demo_refuses_to_wipe_a_folder_it_did_not_create_and_names_what_is_there(tmp_path):
    home = tmp_path / "demo"
    _stack_home(home)
    with pytest.raises(DemoError, match="did not create.*stack"):
        claim(home)
    assert (home / "stack" / "secrets.json").read_text() == '{"postgres": "s3cret"}'
    assert not (home / MARKER).exists()
