"""Open Inference Protocol (V2) tensors in and out: the infer request as a model, its tensors as ticket rows.

The request's rules (which inputs exist, their datatype and shape, which outputs may be asked
for) are the models below, so `GET /openapi.json` publishes what `infer` enforces. Its input
tensors then become the rows a batch is made of (`text` required, `customer_id`, `ticket_id`,
`request_id` optional, all of one length N), read from JSON `data` or, with the binary tensor
extension that Triton's clients use by default, from the bytes after the JSON header: that
decoding depends on the body's binary part, so it is code here, not a model rule. The rows are
then checked as tickets by the one ticket model (router.contract). Answers are always JSON
tensors: every V2 client reads those (binary output is optional).
"""

from __future__ import annotations

import math
import struct
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from router.errors import APIError
from router.fields import Open, worded
from router.wording import quoted

HEADER = "Inference-Header-Content-Length"
TEXT = "text"
INPUT_NAMES = (TEXT, "customer_id", "ticket_id", "request_id")
OUTPUTS = ("topic", "scores", "variant", "model_version", "request_id", "priority", "priority_scores")
BYTES = "BYTES"
BAD = 400
INVALID = "invalid_tensor"
_LENGTH = struct.Struct("<I")


def _invalid(message: str) -> APIError:
    return APIError(BAD, INVALID, message)


class TensorParameters(Open):
    """An input's parameters; only the binary tensor extension's size is read."""

    binary_data_size: Annotated[int, Field(ge=0)] = Field(
        None, description="the byte size of this input in the binary part of the body (binary tensor extension)")


class InputTensor(Open):
    """One input: `text` (BYTES, required), or `customer_id`, `ticket_id`, `request_id` of the same length."""

    name: Annotated[Literal[INPUT_NAMES], worded(  # type: ignore[valid-type]
        INVALID, lambda name, _: f"names unknown input {quoted(name)}; the model takes {list(INPUT_NAMES)} ('text' "
        "required)", "literal_error")]
    datatype: str = Field(description="BYTES for text; the other inputs may be any type the ids are")
    shape: list[Annotated[int, Field(ge=0)]] = Field(description="e.g. [N]; the elements are read row-major")
    data: Any = Field(None, description="the elements (nested arrays are flattened); absent with binary data")
    parameters: TensorParameters | None = None

    @model_validator(mode="after")
    def _readable(self) -> Self:
        binary = self.parameters is not None and "binary_data_size" in self.parameters.model_fields_set
        if (self.name == TEXT or binary) and self.datatype != BYTES:
            raise PydanticCustomError(INVALID, f"is input '{self.name}' of datatype {quoted(self.datatype)}; it "
                                      f"must be {BYTES}")
        if not binary and "data" not in self.model_fields_set:
            raise PydanticCustomError(INVALID, f"is input '{self.name}' without 'data' or "
                                      "parameters.binary_data_size")
        return self


class RequestedOutput(Open):
    """An output the client asks for by name."""

    name: Annotated[Literal[OUTPUTS], worded(  # type: ignore[valid-type]
        INVALID, lambda name, _: f"names unknown output {quoted(name)}; the model gives {list(OUTPUTS)}",
        "literal_error")]


class InferRequest(Open):
    """A V2 infer request: a BYTES `text` of shape [N], optionally `customer_id` (and ids) of shape [N]."""

    id: str = Field(None, description="echoed in the answer")
    inputs: list[InputTensor] = Field(min_length=1, description="a BYTES 'text' of shape [N]; optional "
                                      "'customer_id'")
    outputs: list[RequestedOutput] = Field(None, description="the outputs to answer (all when absent)")

    @model_validator(mode="after")
    def _has_text(self) -> Self:
        if all(tensor.name != TEXT for tensor in self.inputs):
            raise PydanticCustomError(INVALID, f"lacks input '{TEXT}' ({BYTES}, shape [N]), which is required")
        return self

    def requested(self) -> list[str]:
        """The outputs the request names (all of them when it names none)."""
        return [output.name for output in self.outputs] if self.outputs is not None else list(OUTPUTS)


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
    """Nested arrays' elements in row-major order (iterative: JSON nesting cannot exhaust the stack)."""
    out: list[object] = []
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        else:
            out.append(item)
    return out


def _elements(tensor: InputTensor, binary: bytes, offset: int) -> tuple[list[object], int]:
    """The tensor's values (flattened, row-major) and the binary offset after them."""
    size = tensor.parameters.binary_data_size if tensor.parameters is not None else None
    if size is None:
        return _flat(tensor.data), offset
    if offset + size > len(binary):
        raise _invalid(f"input '{tensor.name}' has binary_data_size {size} beyond the binary part of the body")
    return list(bytes_elements(binary[offset:offset + size], tensor.name)), offset + size


def rows(request: InferRequest, binary: bytes) -> list[dict[str, object]]:
    """The request's tickets as row objects, one per element of the `text` input."""
    columns: dict[str, list[object]] = {}
    offset = 0
    for tensor in request.inputs:
        values, offset = _elements(tensor, binary, offset)
        if math.prod(tensor.shape) != len(values):
            raise _invalid(f"input '{tensor.name}' has shape {tensor.shape} but {len(values)} elements")
        columns[tensor.name] = values
    count = len(columns[TEXT])
    for name, values in columns.items():
        if len(values) != count:
            raise _invalid(f"input '{name}' has {len(values)} elements and 'text' has {count}; give one per ticket")
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    """One JSON output tensor."""
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}
