"""Reader for CTranslate2 ``model.bin`` files (binary format version 6).

The layout follows ctranslate2's ``specs/model_spec.py``: a version number, the
spec name and revision, then named little-endian tensors, then aliases
(names that share another variable's data, e.g. tied output projections).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
    5: None,  # bfloat16: numpy has none; read as uint16 and widen
}


class ModelFormatError(ValueError):
    pass


def _read_u8(f: BinaryIO) -> int:
    return struct.unpack("<B", f.read(1))[0]


def _read_u16(f: BinaryIO) -> int:
    return struct.unpack("<H", f.read(2))[0]


def _read_u32(f: BinaryIO) -> int:
    return struct.unpack("<I", f.read(4))[0]


def _read_string(f: BinaryIO) -> str:
    length = _read_u16(f)  # includes the trailing NUL
    return f.read(length)[:-1].decode("utf-8")


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_variables(f: BinaryIO) -> dict[str, np.ndarray]:
    version = _read_u32(f)
    if version != 6:
        raise ModelFormatError(f"unsupported CTranslate2 binary version {version} (expected 6)")
    spec = _read_string(f)
    if spec != "WhisperSpec":
        raise ModelFormatError(f"not a Whisper model: spec {spec!r}")
    _read_u32(f)  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(_read_u32(f)):
        name = _read_string(f)
        rank = _read_u8(f)
        shape = tuple(_read_u32(f) for _ in range(rank))
        dtype_id = _read_u8(f)
        num_bytes = _read_u32(f)
        raw = f.read(num_bytes)
        if dtype_id == 5:
            array = _bfloat16_to_float32(np.frombuffer(raw, dtype=np.uint16))
        elif dtype_id in _DTYPES:
            array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
        else:
            raise ModelFormatError(f"unknown dtype id {dtype_id} for {name}")
        variables[name] = array.reshape(shape)
    for _ in range(_read_u32(f)):
        alias = _read_string(f)
        target = _read_string(f)
        variables[alias] = variables[target]
    return variables


def load_variables(paths: Iterable[Path]) -> dict[str, np.ndarray]:
    """Read a model.bin, possibly split into parts that concatenate."""
    paths = list(paths)
    if len(paths) == 1:
        with open(paths[0], "rb") as f:
            return read_variables(f)
    import io

    data = b"".join(Path(p).read_bytes() for p in paths)
    return read_variables(io.BytesIO(data))


def dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float32 copies of all weights; int8/int16 weights are divided by their ``_scale``."""
    result: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if name.endswith("_scale"):
            continue
        scale = variables.get(f"{name}_scale")
        if scale is not None and value.dtype in (np.int8, np.int16):
            scale = scale.astype(np.float32)
            value = value.astype(np.float32) / scale.reshape(-1, *([1] * (value.ndim - 1)))
        result[name] = value.astype(np.float32)
    return result
