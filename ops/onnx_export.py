"""`ticket-ab export --format onnx`: a registered version as a portable ONNX file, checked and recorded.

The served model is a pickle readable only by the same Python and library versions; the export is
one ONNX graph (retrain.ml.onnx_convert) any onnxruntime can score. Before anything is written, the
two runtimes score the same generated tickets (English and Russian, as traffic mixes them) and the
figures are compared with issue 26's bar. Only an export that meets it is written to PATH (atomically:
a reader never sees half a file; below the bar an older file at PATH stays as it was), and the version
is tagged either way with what the attempt measured, so the registry says which versions have a
checked portable twin and with which checksum.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from load_test.simulate.generator import generate
from retrain.ml.onnx_convert import OnnxScorer, Parity, parity, to_onnx
from retrain.ml.onnx_text import Unconvertible
from ticket_ab import registry
from ticket_ab.atomic import replace_file
from ticket_ab.settings import Settings

PARITY_TICKETS = 2000  # issue 26: the parity check scores 2,000 generated tickets
PARITY_SEED = 26  # fixed, so two exports of one version are checked on the same tickets
SCENARIO = "baseline"  # the generator's everyday mix, Russian tickets included
TAG_PREFIX = "onnx_"


@dataclass(frozen=True)
class Export:
    version: str
    parity: Parity
    sha256: str
    size: int
    written: Path | None  # None: below the parity bar, nothing written


def export_tags(result: Export) -> dict[str, str]:
    """What the version records about the attempt (the checksum only when a file was written)."""
    tags = {"parity_tickets": str(result.parity.n), "parity_same_topic": f"{result.parity.same_topic:.6f}",
            "parity_max_probability_diff": f"{result.parity.max_probability_diff:.3e}",
            "parity_passed": str(result.parity.passes).lower(), "exported_at": datetime.now(UTC).isoformat(),
            "sha256": result.sha256 if result.written else ""}
    return {TAG_PREFIX + key: value for key, value in tags.items()}


def _write_readable(fh: BinaryIO, data: bytes) -> None:
    """The file is for other runtimes and images: readable by all (the temp file starts owner-only)."""
    os.fchmod(fh.fileno(), 0o644)
    fh.write(data)


def export_onnx(settings: Settings, alias: str, out: Path, say: Callable[[str], None] = print,
                n: int = PARITY_TICKETS) -> Export:
    """Convert the alias's version, check parity on `n` generated tickets, write it if it passes, tag the version.

    Raises RegistryError (no registry, unknown alias) and onnx_text.Unconvertible (a part without a converter).
    """
    client = registry.connect(settings.tracking_uri)
    found = registry.version_for(client, settings.model_name, alias)
    if found is None:
        raise registry.RegistryError(f"model {settings.model_name!r} has no {alias!r} version to export "
                                     "(see `ticket-ab status`)")
    say(f"exporting {settings.model_name} v{found.version} ({alias}) as ONNX")
    pipeline = registry.load_version(settings.model_name, found.version)
    try:
        data = to_onnx(pipeline).SerializeToString()
    except Unconvertible as exc:
        raise Unconvertible(f"cannot export v{found.version} as ONNX: {exc}") from None
    texts = generate(SCENARIO, n, PARITY_SEED)["text"].tolist()
    checked = parity(pipeline, OnnxScorer(data), texts)
    say(str(checked))
    written = None
    if checked.passes:
        replace_file(out, lambda fh: _write_readable(fh, data))
        written = out
    result = Export(str(found.version), checked, hashlib.sha256(data).hexdigest(), len(data), written)
    registry.tag_version(client, settings.model_name, result.version, export_tags(result))
    return result
