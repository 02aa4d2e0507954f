"""Open Inference Protocol (V2) tensors in and out: pure functions, so each rule is unit-testable.

A request's input tensors become the rows a batch is made of (`text` required, `customer_id`,
`ticket_id`, `request_id` optional, all of one length N), read from JSON `data` or, with the
binary tensor extension that Triton's clients use by default, from the bytes after the JSON header.
Answers are always JSON tensors: every V2 client reads those (binary output is optional).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

from router.errors import APIError

HEADER = "Inference-Header-Content-Length"
TEXT = "text"
INPUT_NAMES = (TEXT, "customer_id", "ticket_id", "request_id")
BYTES = "BYTES"
BAD = 400
_LENGTH = struct.Struct("<I")


def _invalid(message: str) -> APIError:
    return APIError(BAD, "invalid_tensor", message)


def header_length(value: str | None, body_size: int) -> int | None:
    """The JSON part's size under the binary extension (None: the whole body is JSON)."""
    if value is None:
        return None
    if not value.isdigit() or int(value) > body_size:
        raise _invalid(f"header {HEADER} must be the byte size of the JSON part of the body (at most {body_size}), "
                       f"got {value!r}")
    return int(value)


def bytes_elements(buffer: bytes, name: str) -> list[str]:
    """A binary BYTES tensor: each element a 4-byte little-endian length, then that many UTF-8 bytes."""
    out, offset = [], 0
    while offset < len(buffer):
        if offset + _LENGTH.size > len(buffer):
            raise _invalid(f"binary data of input '{name}' ends inside an element's length")
        (size,) = _LENGTH.unpack_from(buffer, offset)
        offset += _LENGTH.size
        if offset + size > len(buffer):
            raise _invalid(f"binary data of input '{name}' ends inside an element")
        try:
            out.append(buffer[offset:offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise _invalid(f"an element of input '{name}' is not UTF-8 text") from None
        offset += size
    return out


def _flat(data: object) -> list[object]:
    if isinstance(data, list):
        return [item for element in data for item in _flat(element)]
    return [data]


def _elements(tensor: dict[str, Any], binary: bytes, offset: int) -> tuple[list[object], int]:
    """The tensor's values (flattened, row-major) and the binary offset after them."""
    name = tensor["name"]
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise _invalid(f"input '{name}' has binary_data_size {size!r} beyond the binary part of the body")
        if tensor.get("datatype") != BYTES:
            raise _invalid(f"input '{name}' must have datatype BYTES, got {tensor.get('datatype')!r}")
        return list(bytes_elements(binary[offset:offset + size], name)), offset + size
    if "data" not in tensor:
        raise _invalid(f"input '{name}' has neither 'data' nor parameters.binary_data_size")
    return _flat(tensor["data"]), offset


def _checked(tensor: object) -> dict[str, Any]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise _invalid("every input must be an object with a 'name', 'datatype', 'shape' and 'data'")
    name = tensor["name"]
    if name not in INPUT_NAMES:
        raise _invalid(f"unknown input '{name}'; the model takes {list(INPUT_NAMES)} ('text' required)")
    if name == TEXT and tensor.get("datatype") != BYTES:
        raise _invalid(f"input 'text' must have datatype BYTES, got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise _invalid(f"input '{name}' must have a 'shape' of non-negative integers, e.g. [N]")
    return tensor


def rows(body: dict[str, Any], binary: bytes) -> list[object]:
    """The request's tickets as row objects, one per element of the `text` input."""
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise _invalid("the body needs 'inputs': an array of tensors with a BYTES 'text' of shape [N]")
    columns: dict[str, list[object]] = {}
    offset = 0
    for tensor in map(_checked, tensors):
        values, offset = _elements(tensor, binary, offset)
        if math.prod(tensor["shape"]) != len(values):
            raise _invalid(f"input '{tensor['name']}' has shape {tensor['shape']} but {len(values)} elements")
        columns[tensor["name"]] = values
    if TEXT not in columns:
        raise _invalid("input 'text' (BYTES, shape [N]) is required")
    count = len(columns[TEXT])
    for name, values in columns.items():
        if len(values) != count:
            raise _invalid(f"input '{name}' has {len(values)} elements and 'text' has {count}; give one per ticket")
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def requested(body: dict[str, Any], available: Sequence[str]) -> list[str]:
    """The outputs the request names (all of them when it names none)."""
    wanted = body.get("outputs")
    if wanted is None:
        return list(available)
    if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
        raise _invalid("'outputs' must be an array of objects with a 'name'")
    names = [output["name"] for output in wanted]
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise _invalid(f"unknown output(s) {unknown}; the model gives {list(available)}")
    return names


def tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    """One JSON output tensor."""
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}
