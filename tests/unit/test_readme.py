"""The README is the product's front door: its promises must match the code."""

from pathlib import Path

from ops.cli import settings_table
from ticket_ab.settings import env_names

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_documents_every_setting():
    missing = [env for env in env_names().values() if f"`{env}`" not in README]
    assert not missing, f"README configuration table lacks {missing}"


def test_readme_settings_table_is_the_one_the_code_generates():
    start, end = "<!-- settings-table:start -->\n", "\n<!-- settings-table:end -->"
    shown = README[README.index(start) + len(start):README.index(end)]
    assert shown == settings_table(), "regenerate it: ticket-ab settings --markdown"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    assert "make demo" in README and "make test" in README
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_readme_figure_exists():
    assert (REPO / "analysis" / "ab_report_example.png").is_file()
