"""The body of `/invocations` as a model: the JSON payloads MLflow's scoring server takes, turned into ticket rows.

Exactly one of `dataframe_split`, `dataframe_records`, `inputs`, `instances` (see
mlflow.pyfunc.scoring_server); `params` is accepted and ignored. Each format's shape is checked
here; the rows it gives are then checked as tickets by the one ticket model (router.contract), so a
row is valid exactly when a `/predict` body would be. Refusals use the code `invalid_payload` and
answer 400, as MLflow's server does.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from router.fields import Open, one_of, worded
from router.wording import quoted

FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")
INVALID = "invalid_payload"


class Split(Open):
    """pandas' `split` orient: `columns` and `data` (rows as arrays); `index` is ignored."""

    columns: list[str] = Field(description="the column names; 'text' is required, 'customer_id' decides the arm")
    data: list[list[Any]] = Field(description="the rows, one value per column")

    @model_validator(mode="after")
    def _rows_fit_columns(self) -> Self:
        named = [column.strip() for column in self.columns]
        if "" in named:
            raise PydanticCustomError(INVALID, f"has an empty column name in {quoted(self.columns)}; name every column")
        twice = sorted({column for column in named if named.count(column) > 1})
        if twice:
            raise PydanticCustomError(INVALID, f"names column {quoted(twice[0])} more than once in "
                                      f"{quoted(self.columns)}; each column once (which one would be scored?)")
        for position, row in enumerate(self.data):
            if len(row) != len(self.columns):
                raise PydanticCustomError(INVALID, f"needs {len(self.columns)} values in every row, one per column "
                                          f"{quoted(self.columns)}; row {position} has {len(row)}")
        return self

    def rows(self) -> list[dict[str, Any]]:
        """One object per row, keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.data]


def _equal_lengths(columns: dict[str, Any]) -> dict[str, list[Any]]:
    """TF-serving columns, a scalar being a column of one row; every column needs one value per row."""
    lists = {name: values if isinstance(values, list) else [values] for name, values in columns.items()}
    lengths = sorted({len(values) for values in lists.values()})
    if len(lengths) > 1:
        raise PydanticCustomError(INVALID, f"has columns of different lengths {quoted(lengths)}; each needs one "
                                  "value per row")
    return lists


def _inputs_kind(value: Any) -> str | None:
    return "rows" if isinstance(value, list) else "columns" if isinstance(value, dict) else None


Rows = Annotated[list[Any], Field(description="rows: objects with a 'text' field, or texts")]
Inputs = one_of(_inputs_kind, INVALID, "must be rows (an array) or columns (an object of arrays)",
                rows=Rows, columns=Annotated[dict[str, Any], AfterValidator(_equal_lengths)])
SplitFrame = Annotated[Split, worded(INVALID, lambda *_: "must be an object with 'columns' (column names) and "
                                     "'data' (rows as arrays), as DataFrame.to_dict(orient='split') gives",
                                     "model_type")]


class MlflowPayload(Open):
    """Exactly one of the four fields, as `mlflow models serve` takes them."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": [name]} for name in FORMATS]})

    dataframe_split: SplitFrame = Field(None, description="DataFrame.to_dict(orient='split') with a 'text' column")
    dataframe_records: Rows = Field(None, description="rows as objects with a 'text' field")
    inputs: Inputs = Field(None, description="columns ({'text': [...]}) or rows")
    instances: Rows = Field(None, description="rows")
    params: Any = Field(None, description="accepted and ignored")

    @model_validator(mode="before")
    @classmethod
    def _one_format(cls, data: Any) -> Any:
        if isinstance(data, dict) and sum(name in data for name in FORMATS) != 1:
            raise PydanticCustomError(INVALID, f"must have exactly one of the fields {list(FORMATS)}, as `mlflow "
                                      f"models serve` takes; it has {quoted(sorted(data))}")
        return data

    def rows(self) -> list[Any]:
        """The payload's rows, each an object with a `text` field when the client sent one."""
        (name,) = self.model_fields_set & set(FORMATS)
        data = getattr(self, name)
        if isinstance(data, Split):
            return data.rows()
        if isinstance(data, dict):
            count = len(next(iter(data.values()), []))
            return [{column: values[i] for column, values in data.items()} for i in range(count)]
        # a bare string is a row with only a text: what `inputs: ["..."]` means for a one-column model
        return [{"text": row} if isinstance(row, str) else row for row in data]
