"""Reading a foreign checkpoint: CTranslate2's binary `model.bin`, tensor by tensor, into torch."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

# CTranslate2's DataType enum (include/ctranslate2/types.h), in file order.
CT2_DTYPES = {
    0: (np.float32, torch.float32),
    1: (np.int8, torch.int8),
    2: (np.int16, torch.int16),
    3: (np.int32, torch.int32),
    4: (np.float16, torch.float16),
    5: (np.int16, torch.bfloat16),  # numpy has no bfloat16: read the bits as int16, then view
}


def read_ctranslate2_model(path):
    """Read a CTranslate2 `model.bin`. Returns (variables, info).

    variables: {name: tensor in the stored dtype}, e.g.
        "encoder/conv1/weight"                         (384, 80, 3) float16
        "decoder/layer_0/self_attention/linear_0/weight" (1152, 384) float16  (fused q, k, v)
        "decoder/num_heads"                             ()           int16    (a scalar attribute)
    info: {"binary_version", "spec_name", "revision", "aliases": {alias: target name}}

    The format (binary version 6, written by ctranslate2/specs/model_spec.py), all
    integers little-endian; a string is a uint16 length n, then n-1 UTF-8 bytes and a 0:

        uint32 binary_version          (6)
        string spec_name               ("WhisperSpec")
        uint32 spec_revision
        uint32 n_variables, then per variable, sorted by name:
            string name
            uint8  rank, then rank x uint32 dims
            uint8  dtype id            (0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16)
            uint32 n_bytes, then n_bytes of row-major data
        uint32 n_aliases, then per alias: string alias, string target
            (a variable equal to another is stored once; here the output projection
             is an alias of the token embedding: tied weights)
    """
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def take_string():
        nonlocal pos
        (n,) = take("H")
        text = data[pos : pos + n - 1].decode("utf-8")
        pos += n
        return text

    (binary_version,) = take("I")
    if binary_version != 6:
        raise ValueError(
            f"{path}: CTranslate2 binary version {binary_version}; this reader knows version 6, "
            "which current CTranslate2 converters write. Re-convert the model with a recent CTranslate2."
        )
    spec_name = take_string()
    (revision,) = take("I")

    variables = {}
    (n_variables,) = take("I")
    for _ in range(n_variables):
        name = take_string()
        (rank,) = take("B")
        shape = take("I" * rank)
        (dtype_id,) = take("B")
        (n_bytes,) = take("I")
        np_dtype, torch_dtype = CT2_DTYPES[dtype_id]
        array = np.frombuffer(data, dtype=np_dtype, count=n_bytes // np.dtype(np_dtype).itemsize, offset=pos)
        tensor = torch.from_numpy(array.copy()).view(torch_dtype).reshape(shape)
        variables[name] = tensor
        pos += n_bytes

    aliases = {}
    (n_aliases,) = take("I")
    for _ in range(n_aliases):
        alias = take_string()
        aliases[alias] = take_string()

    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} unread bytes at the end; the file is not a CTranslate2 model.")
    info = {"binary_version": binary_version, "spec_name": spec_name, "revision": revision, "aliases": aliases}
    return variables, info

