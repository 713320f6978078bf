"""Check Python values against a schema and convert JSON values for Avro.

Both walkers report the first problem as a `FieldError` carrying the dotted path of
the offending value (`dimensions[2].score`, `metadata["lang"]`, `envelope.event_id`).
Callers turn it into a `ValidationError` naming the event type.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any

from events.avro import JsonSchema, QualifiedSchema, describe, kind_of, logical_type

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
_TIMESTAMPS = {"timestamp-millis", "timestamp-micros"}
_LOCAL_TIMESTAMPS = {"local-timestamp-millis", "local-timestamp-micros"}
_TIMES = {"time-millis", "time-micros"}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EPOCH_DATE = dt.date(1970, 1, 1)


class FieldError(Exception):
    """A value at `path` does not fit its schema."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path or "$"
        self.message = message
        super().__init__(f"{self.path}: {message}")


def join(path: str, name: str) -> str:
    """Return the path of field `name` inside the value at `path`."""
    return f"{path}.{name}" if path else name


def index(path: str, position: int) -> str:
    """Return the path of array item `position` inside the value at `path`."""
    return f"{path}[{position}]"


def key(path: str, map_key: str) -> str:
    """Return the path of map value `map_key` inside the value at `path`."""
    return f"{path}[{json.dumps(map_key, ensure_ascii=False)}]"


def show(value: Any) -> str:
    """Return a short description of a value for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_range(value: int, kind: str, path: str) -> None:
    low, high = INT_RANGE if kind == "int" else LONG_RANGE
    if not low <= value <= high:
        raise FieldError(path, f"{value} is out of range for Avro {kind}")


def truncate_millis(value: dt.datetime) -> dt.datetime:
    """Drop sub-millisecond precision, which timestamp-millis cannot carry."""
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def check_enum(node: Mapping[str, Any], value: Any, path: str) -> None:
    """Raise FieldError unless `value` is one of the enum's symbols."""
    symbols = node["symbols"]
    if not isinstance(value, str) or value not in symbols:
        raise FieldError(path, f"{show(value)} is not one of the symbols {', '.join(symbols)}")


class ValueChecker:
    """Check Python values (as the codec writes them) against one qualified schema."""

    def __init__(self, schema: QualifiedSchema) -> None:
        self.schema = schema

    def check(self, node: JsonSchema, value: Any, path: str) -> None:
        """Raise FieldError unless `value` can be written with schema `node`."""
        node = self.schema.resolve(node)
        kind = kind_of(node)
        lt = logical_type(node)
        if kind == "union":
            self._check_union(node, value, path)
        elif kind == "null":
            if value is not None:
                raise FieldError(path, f"expected null, got {show(value)}")
        elif value is None:
            raise FieldError(path, f"is required ({describe(node, self.schema)}), got null")
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise FieldError(path, f"expected boolean, got {show(value)}")
        elif kind in ("int", "long"):
            self._check_integer(kind, lt, value, path)
        elif kind in ("float", "double"):
            if not _is_number(value):
                raise FieldError(path, f"expected a number ({kind}), got {show(value)}")
        elif kind == "string":
            self._check_string(lt, value, path)
        elif kind == "bytes":
            ok = isinstance(value, (bytes, bytearray)) or (
                lt == "decimal" and isinstance(value, decimal.Decimal)
            )
            if not ok:
                raise FieldError(path, f"expected bytes, got {show(value)}")
        elif kind == "fixed":
            if not isinstance(value, (bytes, bytearray)) or len(value) != node["size"]:
                raise FieldError(path, f"expected {node['size']} bytes, got {show(value)}")
        elif kind == "enum":
            check_enum(node, value, path)
        elif kind == "array":
            if not isinstance(value, (list, tuple)):
                raise FieldError(path, f"expected an array, got {show(value)}")
            for i, item in enumerate(value):
                self.check(node["items"], item, index(path, i))
        elif kind == "map":
            if not isinstance(value, Mapping):
                raise FieldError(path, f"expected a map, got {show(value)}")
            for k, item in value.items():
                if not isinstance(k, str):
                    raise FieldError(path, f"map keys must be strings, got {show(k)}")
                self.check(node["values"], item, key(path, k))
        elif kind == "record":
            self._check_record(node, value, path)
        else:  # pragma: no cover - QualifiedSchema rejects unknown kinds
            raise FieldError(path, f"unsupported schema kind {kind}")

    def _check_integer(self, kind: str, lt: str | None, value: Any, path: str) -> None:
        if lt in _TIMESTAMPS or lt in _LOCAL_TIMESTAMPS:
            if isinstance(value, dt.datetime):
                if lt in _TIMESTAMPS and value.tzinfo is None:
                    raise FieldError(path, "datetime must be timezone-aware (use UTC)")
                return
        elif lt == "date":
            if isinstance(value, dt.datetime):
                raise FieldError(path, f"expected a date, got {show(value)}")
            if isinstance(value, dt.date):
                return
        elif lt in _TIMES and isinstance(value, dt.time):
            return
        if not _is_int(value):
            wanted = f"{kind} ({lt})" if lt else kind
            raise FieldError(path, f"expected {wanted}, got {show(value)}")
        _check_range(value, kind, path)

    def _check_string(self, lt: str | None, value: Any, path: str) -> None:
        if lt == "uuid":
            if isinstance(value, uuid.UUID):
                return
            if isinstance(value, str):
                try:
                    uuid.UUID(value)
                except ValueError:
                    raise FieldError(path, f"not a UUID: {value!r}") from None
                return
        if not isinstance(value, str):
            raise FieldError(path, f"expected string, got {show(value)}")

    def _check_record(self, node: Mapping[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise FieldError(
                path, f"expected a record ({describe(node, self.schema)}), got {show(value)}"
            )
        fields = {f["name"]: f for f in node["fields"]}
        for name in value:
            if name not in fields:
                raise FieldError(join(path, str(name)), "unknown field")
        for name, field in fields.items():
            if name in value:
                self.check(field["type"], value[name], join(path, name))
            elif "default" not in field:
                raise FieldError(join(path, name), "required field is missing")

    def _check_union(self, branches: list[Any], value: Any, path: str) -> None:
        resolved = [self.schema.resolve(b) for b in branches]
        if value is None:
            if "null" not in [kind_of(b) for b in resolved]:
                raise FieldError(path, f"is required ({describe(resolved, self.schema)}), got null")
            return
        candidates = [b for b in resolved if kind_of(b) != "null"]
        errors = []
        for branch in candidates:
            try:
                self.check(branch, value, path)
            except FieldError as exc:
                errors.append(exc)
            else:
                return
        if len(errors) == 1:
            raise errors[0]
        raise FieldError(
            path, f"{show(value)} matches no branch of {describe(resolved, self.schema)}"
        )


class JsonConverter:
    """Convert JSON values to the Python values the codec writes, per one schema.

    Timestamps accept ISO-8601 strings (no offset means UTC) or epoch milliseconds;
    dates accept `YYYY-MM-DD` or days since the epoch; uuids accept their string form;
    bytes and fixed accept base64; unions accept plain values (the first branch that
    fits wins); missing fields get their schema default.
    """

    def __init__(self, schema: QualifiedSchema) -> None:
        self.schema = schema

    def convert(self, node: JsonSchema, value: Any, path: str) -> Any:
        """Return `value` converted for schema `node`, or raise FieldError."""
        node = self.schema.resolve(node)
        kind = kind_of(node)
        lt = logical_type(node)
        if kind == "union":
            return self._convert_union(node, value, path)
        if kind == "null":
            if value is not None:
                raise FieldError(path, f"expected null, got {show(value)}")
            return None
        if value is None:
            raise FieldError(path, f"is required ({describe(node, self.schema)}), got null")
        if kind == "boolean":
            if not isinstance(value, bool):
                raise FieldError(path, f"expected true or false, got {show(value)}")
            return value
        if kind in ("int", "long"):
            return self._convert_integer(kind, lt, value, path)
        if kind in ("float", "double"):
            if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
                raise FieldError(path, f"expected a number ({kind}), got {show(value)}")
            return float(value)
        if kind == "string":
            return self._convert_string(lt, value, path)
        if kind == "bytes" and lt == "decimal" and isinstance(value, (str, decimal.Decimal)):
            try:
                return decimal.Decimal(value)
            except decimal.InvalidOperation:
                raise FieldError(path, f"not a decimal number: {value!r}") from None
        if kind in ("bytes", "fixed"):
            return self._convert_bytes(node, value, path)
        if kind == "enum":
            check_enum(node, value, path)
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise FieldError(path, f"expected an array, got {show(value)}")
            return [
                self.convert(node["items"], item, index(path, i)) for i, item in enumerate(value)
            ]
        if kind == "map":
            if not isinstance(value, Mapping):
                raise FieldError(path, f"expected an object (map), got {show(value)}")
            return {
                str(k): self.convert(node["values"], item, key(path, str(k)))
                for k, item in value.items()
            }
        if kind == "record":
            return self.convert_record(node, value, path)
        raise FieldError(path, f"unsupported schema kind {kind}")  # pragma: no cover

    def convert_record(
        self, node: Mapping[str, Any], value: Any, path: str, *, skip: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Convert a JSON object for a record, filling defaults; fields in `skip` are ignored."""
        if not isinstance(value, Mapping):
            raise FieldError(
                path, f"expected an object ({describe(node, self.schema)}), got {show(value)}"
            )
        fields = {f["name"]: f for f in node["fields"] if f["name"] not in skip}
        for name in value:
            if name not in fields and name not in skip:
                raise FieldError(join(path, str(name)), "unknown field")
        out: dict[str, Any] = {}
        for name, field in fields.items():
            where = join(path, name)
            if name in value:
                out[name] = self.convert(field["type"], value[name], where)
            elif "default" in field:
                out[name] = self._default(field, where)
            else:
                raise FieldError(where, "required field is missing")
        return out

    def _default(self, field: Mapping[str, Any], path: str) -> Any:
        field_type = self.schema.resolve(field["type"])
        if kind_of(field_type) == "union":
            # A union's default belongs to its first branch.
            field_type = self.schema.resolve(field_type[0])
        return self.convert(field_type, field["default"], path)

    def _convert_integer(self, kind: str, lt: str | None, value: Any, path: str) -> Any:
        if lt in _TIMESTAMPS or lt in _LOCAL_TIMESTAMPS:
            return self._convert_timestamp(lt, value, path)
        if lt == "date":
            return self._convert_date(value, path)
        if lt in _TIMES and isinstance(value, (str, dt.time)):
            try:
                return value if isinstance(value, dt.time) else dt.time.fromisoformat(value)
            except ValueError:
                raise FieldError(path, f"not an ISO-8601 time: {value!r}") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_int(value):
            raise FieldError(path, f"expected an integer ({kind}), got {show(value)}")
        _check_range(value, kind, path)
        return value

    def _convert_timestamp(self, lt: str, value: Any, path: str) -> dt.datetime:
        local = lt in _LOCAL_TIMESTAMPS
        if isinstance(value, dt.datetime):
            parsed = value
        elif isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                raise FieldError(path, f"not an ISO-8601 timestamp: {value!r}") from None
        elif _is_int(value) or (isinstance(value, float) and math.isfinite(value)):
            millis = int(value)
            parsed = EPOCH + dt.timedelta(milliseconds=millis)
            if local:
                parsed = parsed.replace(tzinfo=None)
        else:
            raise FieldError(
                path, f"expected an ISO-8601 string or epoch milliseconds, got {show(value)}"
            )
        if local:
            parsed = parsed.replace(tzinfo=None)
        elif parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        else:
            parsed = parsed.astimezone(dt.UTC)
        return truncate_millis(parsed) if lt.endswith("millis") else parsed

    def _convert_date(self, value: Any, path: str) -> dt.date:
        if isinstance(value, dt.datetime):
            raise FieldError(path, f"expected a date, got {show(value)}")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise FieldError(path, f"not an ISO-8601 date (YYYY-MM-DD): {value!r}") from None
        if _is_int(value):
            return EPOCH_DATE + dt.timedelta(days=value)
        raise FieldError(path, f"expected a YYYY-MM-DD string or epoch days, got {show(value)}")

    def _convert_string(self, lt: str | None, value: Any, path: str) -> Any:
        if lt == "uuid":
            if isinstance(value, uuid.UUID):
                return value
            if isinstance(value, str):
                try:
                    return uuid.UUID(value)
                except ValueError:
                    raise FieldError(path, f"not a UUID: {value!r}") from None
        if not isinstance(value, str):
            raise FieldError(path, f"expected a string, got {show(value)}")
        return value

    def _convert_bytes(self, node: Any, value: Any, path: str) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        elif isinstance(value, str):
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise FieldError(path, "expected base64-encoded bytes") from None
        else:
            raise FieldError(path, f"expected base64-encoded bytes, got {show(value)}")
        if kind_of(node) == "fixed" and len(data) != node["size"]:
            raise FieldError(path, f"expected {node['size']} bytes, got {len(data)}")
        return data

    def _convert_union(self, branches: list[Any], value: Any, path: str) -> Any:
        resolved = [self.schema.resolve(b) for b in branches]
        if value is None:
            if "null" not in [kind_of(b) for b in resolved]:
                raise FieldError(path, f"is required ({describe(resolved, self.schema)}), got null")
            return None
        candidates = [b for b in resolved if kind_of(b) != "null"]
        errors = []
        for branch in candidates:
            try:
                return self.convert(branch, value, path)
            except FieldError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise FieldError(
            path, f"{show(value)} matches no branch of {describe(resolved, self.schema)}"
        )


def to_json(value: Any) -> Any:
    """Return a JSON-serialisable form of a Python event value (inverse of JsonConverter)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, dt.datetime):
        spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
        if value.tzinfo is None:
            return value.isoformat(timespec=spec)
        return value.astimezone(dt.UTC).isoformat(timespec=spec).replace("+00:00", "Z")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    raise TypeError(f"cannot represent {show(value)} as JSON")
