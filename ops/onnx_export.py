"""`ticket-ab export --format onnx`: a registered version as a portable ONNX file, checked and recorded.

The served model is a pickle readable only by the same Python and library versions; the export is
one ONNX graph (retrain.ml.onnx_convert) any onnxruntime can score: the topic, and for a two-head
version the priority as well (its urgent threshold inside the graph). Before anything is written, the
two runtimes score the same generated tickets (English and Russian, as traffic mixes them) and the
figures of each head are compared with issue 26's bar. Only an export that meets it is written to PATH
(atomically: a reader never sees half a file; below the bar an older file at PATH stays as it was), and the version
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
from typing import Any, BinaryIO

from load_test.simulate.generator import generate
from retrain.ml.onnx_convert import OnnxScorer, Parity, parity, to_onnx
from retrain.ml.onnx_text import Unconvertible
from ticket_ab import registry
from ticket_ab.atomic import replace_file
from ticket_ab.settings import Settings
from ticket_ab.twohead import PRIORITY_HEAD, heads_of, priority_note

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
    """What the version records about the attempt (the checksum only when a file was written; the priority figures
    only for a two-head version: an empty value removes a tag)."""
    checked = result.parity
    two = checked.same_priority is not None
    tags = {"parity_tickets": str(checked.n), "parity_same_topic": f"{checked.same_topic:.6f}",
            "parity_max_probability_diff": f"{checked.max_probability_diff:.3e}",
            "parity_same_priority": f"{checked.same_priority:.6f}" if two else "",
            "parity_priority_max_probability_diff": f"{checked.max_priority_probability_diff:.3e}" if two else "",
            "parity_passed": str(checked.passes).lower(), "exported_at": datetime.now(UTC).isoformat(),
            "sha256": result.sha256 if result.written else ""}
    return {TAG_PREFIX + key: value for key, value in tags.items()}


def _write_readable(fh: BinaryIO, data: bytes) -> None:
    """The file is for other runtimes and images: readable by all (the temp file starts owner-only)."""
    os.fchmod(fh.fileno(), 0o644)
    fh.write(data)


def _heads(model: Any) -> str:
    """What the graph will answer, in words."""
    if PRIORITY_HEAD not in heads_of(model):
        return f"topic only ({priority_note(model)})"
    threshold = model.urgent_threshold
    rule = "argmax" if threshold is None else f"urgent when P(urgent) >= {threshold:g}"
    return f"topic and priority (priority by {rule})"


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
    model = registry.load_version(settings.model_name, found.version)
    say(f"exporting {settings.model_name} v{found.version} ({alias}) as ONNX: {_heads(model)}")
    try:
        data = to_onnx(model).SerializeToString()
    except Unconvertible as exc:
        raise Unconvertible(f"cannot export v{found.version} as ONNX: {exc}") from None
    texts = generate(SCENARIO, n, PARITY_SEED)["text"].tolist()
    checked = parity(model, OnnxScorer(data), texts)
    say(str(checked))
    written = None
    if checked.passes:
        replace_file(out, lambda fh: _write_readable(fh, data))
        written = out
    result = Export(str(found.version), checked, hashlib.sha256(data).hexdigest(), len(data), written)
    registry.tag_version(client, settings.model_name, result.version, export_tags(result))
    return result
