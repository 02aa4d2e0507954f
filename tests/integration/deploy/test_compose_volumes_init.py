"""The compose file's `volumes-init` script, run for real on directories standing in for the volumes."""

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from compose_file import GROUP_WRITABLE, OWN, load, writable_mounts


@pytest.fixture(scope="module")
def compose() -> dict:
    return load()


def test_volumes_init_script_gives_root_owned_volumes_to_their_writers(compose, tmp_path):
    """Run the service's own script (compose's `$$` unescaped) on directories standing in for the volumes.

    As root (CI, our machines) it chowns to the real uids; otherwise only to our own uid is allowed, so
    the script runs with its owners replaced by ours: the find/chown/chmod logic is still exercised.
    """
    init = compose["services"]["volumes-init"]
    script = init["command"][0].replace("$$", "$").replace("/volumes/", f"{tmp_path}/")
    if os.geteuid() != 0:
        script = re.sub(r"own \d+:\d+", f"own {os.getuid()}:{os.getgid()}", script)
    for volume in writable_mounts(init):
        (tmp_path / volume / "date=2026-01-01").mkdir(parents=True)
        (tmp_path / volume / "date=2026-01-01" / "old.csv").write_text("root-owned\n")
    result = subprocess.run([*init["entrypoint"], script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for uid, gid, path in OWN.findall(script):
        for entry in [Path(path), *Path(path).rglob("*")]:
            assert (entry.stat().st_uid, entry.stat().st_gid) == (int(uid), int(gid)), entry
    for path in GROUP_WRITABLE.findall(script):
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o2775
