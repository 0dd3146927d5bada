"""Exporter: model -> ``<family>.safetensors`` + ``manifest.json`` entry (docs/model-format.md)."""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from typing import Dict, Optional

import torch
import torch.nn as nn
from safetensors import safe_open

from .models import GDN, LEAKY_RELU_SLOPE, MeanScaleGain, _FactorizedBase, _GainModel

FORMAT = "tfci-model/1"
MANIFEST_FORMAT_VERSION = 1
PRECISION = 16
REQUIRED_METADATA = ("format", "architecture", "family", "N", "M", "levels", "precision",
                     "leaky_relu_slope")
MANIFEST_KEY_ORDER = ("family", "architecture", "file", "sha256", "levels", "version", "decoder_id",
                      "versions", "metric", "lambdas", "mse_term", "mse_lambdas", "N", "M", "trained", "training", "kodak")
# What the decoder reads (crates/codec-core/src/model/decoder_id.rs): the id in every .tfci file.
DECODER_PREFIXES = ("g_s.", "h_s.", "y_eb.", "z_eb.", "y_gc.")
DECODER_TENSORS = ("y_gain_inv",)


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.int32: "I32", torch.uint8: "U8"}


def write_safetensors(path: str, tensors: Dict[str, torch.Tensor], metadata: Dict[str, str]) -> None:
    """Deterministic safetensors writer (byte-identical output for identical input).

    ``safetensors.torch.save_file`` orders the metadata through a hash map, so two runs can give files
    with different bytes (and sha256).  Here the header is JSON with sorted keys, tensors are laid out
    by (element size descending, name) so every tensor is aligned to its element size, and the header
    is space-padded to a multiple of 8 bytes.  The result is read back by the safetensors library.
    """
    names = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header: Dict[str, object] = {"__metadata__": {k: str(v) for k, v in sorted(metadata.items())}}
    blobs, off = [], 0
    for k in names:
        v = tensors[k].detach().cpu().contiguous()
        if v.dtype not in _ST_DTYPES:
            raise TypeError(f"{k}: unsupported dtype {v.dtype}")
        b = v.numpy().astype(v.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": _ST_DTYPES[v.dtype], "shape": list(v.shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def is_decoder_tensor(name: str) -> bool:
    return name in DECODER_TENSORS or name.startswith(DECODER_PREFIXES)


def decoder_id(tensors: Dict[str, torch.Tensor], architecture: str, levels: int, slope: str) -> str:
    """First 16 hex digits of the digest of what the decoder reads (docs/model-format.md, "Weights
    id"): header ``tfci-decoder/1 ARCH levels=L slope=S``, then per decoder tensor in name order
    ``name \0 dtype \0`` rank, shape, byte length (u64 little-endian) and the little-endian data."""
    h = hashlib.sha256(f"tfci-decoder/1 {architecture} levels={levels} slope={slope}".encode())
    for name in sorted(n for n in tensors if is_decoder_tensor(n)):
        v = tensors[name].detach().cpu().contiguous()
        b = v.numpy().astype(v.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        h.update(name.encode() + b"\0" + _ST_DTYPES[v.dtype].encode() + b"\0")
        h.update(len(v.shape).to_bytes(8, "little"))
        for dim in v.shape:
            h.update(int(dim).to_bytes(8, "little"))
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:16]


def _versions(old: Optional[dict], new_id: str, steps) -> tuple:
    """(version, versions) of a new export: the version counts up when the decoder id changes; a
    manifest entry from before decoder ids becomes version 1 under its file id (sha256[:16])."""
    if old is None:
        return 1, [{"version": 1, "weights_id": new_id, "note": f"{steps} steps"}]
    versions = list(old.get("versions") or [])
    if not versions:
        old_steps = (old.get("training") or {}).get("steps", "?")
        versions = [{"version": 1, "weights_id": old["sha256"][:16],
                     "note": f"{old_steps} steps; files written before decoder ids"}]
    for v in versions:
        if v["weights_id"] == new_id:
            return v["version"], versions
    version = max(v["version"] for v in versions) + 1
    return version, versions + [{"version": version, "weights_id": new_id, "note": f"{steps} steps"}]


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def round_weights_to_f16(model: _GainModel) -> None:
    """Round conv weights/biases and effective GDN beta/gamma to f16 and load them back as f32.

    GDN layers get their effective values pinned (``GDN.set_effective``) so that every later forward
    uses exactly the f16-representable values that are written to the file.
    """
    for _, layer in model.transform_layers():
        if isinstance(layer, GDN):
            beta, gamma = layer.effective()
            layer.set_effective(beta.half().float(), gamma.half().float(), pin=True)
        else:
            layer.weight.copy_(layer.weight.half().float())
            if layer.bias is not None:
                layer.bias.copy_(layer.bias.half().float())


def _eb_tables(ebs) -> Dict[str, torch.Tensor]:
    """Concatenate the tables of a list of EntropyBottlenecks (rows in order), zero-padded."""
    for eb in ebs:
        if eb._offset.numel() == 0:
            raise ValueError("entropy bottleneck has no tables: call model.update() first")
    maxlen = max(int(eb._cdf_length.max()) for eb in ebs)
    rows = sum(eb._quantized_cdf.shape[0] for eb in ebs)
    cdf = torch.zeros(rows, maxlen, dtype=torch.int32)
    r = 0
    lens, offs, meds = [], [], []
    for eb in ebs:
        q = eb._quantized_cdf.to(torch.int32).cpu()
        cl = eb._cdf_length.to(torch.int32).cpu()
        for i in range(q.shape[0]):
            n = int(cl[i])
            cdf[r, :n] = q[i, :n]
            r += 1
        lens.append(cl)
        offs.append(eb._offset.to(torch.int32).cpu())
        meds.append(eb._get_medians().detach().reshape(-1).to(torch.float32).cpu())
    return {
        "cdf": cdf,
        "cdf_len": torch.cat(lens).contiguous(),
        "offset": torch.cat(offs).contiguous(),
        "medians": torch.cat(meds).contiguous(),
    }


def _gc_tables(gc) -> Dict[str, torch.Tensor]:
    if gc._offset.numel() == 0:
        raise ValueError("gaussian conditional has no tables: call model.update() first")
    cl = gc._cdf_length.to(torch.int32).cpu()
    q = gc._quantized_cdf.to(torch.int32).cpu()
    maxlen = int(cl.max())
    cdf = torch.zeros(q.shape[0], maxlen, dtype=torch.int32)
    for i in range(q.shape[0]):
        cdf[i, : int(cl[i])] = q[i, : int(cl[i])]
    return {
        "cdf": cdf,
        "cdf_len": cl.contiguous(),
        "offset": gc._offset.to(torch.int32).cpu().contiguous(),
        "scale_table": gc.scale_table.detach().to(torch.float32).cpu().contiguous(),
    }


@torch.no_grad()
def model_tensors(model: _GainModel, dtype: str = "f32") -> "OrderedDict[str, torch.Tensor]":
    """The tensors of the contract, named as in docs/model-format.md."""
    wdt = {"f16": torch.float16, "f32": torch.float32}[dtype]
    t: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, layer in model.transform_layers():
        if isinstance(layer, GDN):
            beta, gamma = layer.effective()
            t[f"{name}.beta"] = beta.detach().to(wdt)
            t[f"{name}.gamma"] = gamma.detach().to(wdt)
        else:
            t[f"{name}.weight"] = layer.weight.detach().to(wdt)
            if layer.bias is not None:
                t[f"{name}.bias"] = layer.bias.detach().to(wdt)
    t["y_gain"] = model.y_gain.detach().to(torch.float32)
    t["y_gain_inv"] = model.y_gain_inv.detach().to(torch.float32)
    if isinstance(model, _FactorizedBase):
        for k, v in _eb_tables(list(model.entropy_bottlenecks)).items():
            t[f"y_eb.{k}"] = v
    elif isinstance(model, MeanScaleGain):
        for k, v in _eb_tables([model.entropy_bottleneck]).items():
            t[f"z_eb.{k}"] = v
        for k, v in _gc_tables(model.gaussian_conditional).items():
            t[f"y_gc.{k}"] = v
    else:
        raise TypeError(f"unsupported model {type(model).__name__}")
    for k in t:
        t[k] = t[k].cpu().contiguous()
        if t[k].is_floating_point() and not torch.isfinite(t[k]).all():
            raise ValueError(f"tensor {k} has non-finite values (f16 overflow?)")
    return t


def _load_manifest(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            m = json.load(f)
        if m.get("format_version") != MANIFEST_FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported format_version {m.get('format_version')}")
        return m
    return {"format_version": MANIFEST_FORMAT_VERSION, "families": []}


def _order_entry(entry: dict) -> dict:
    out = {k: entry[k] for k in MANIFEST_KEY_ORDER if k in entry}
    out.update({k: v for k, v in entry.items() if k not in out})
    return out


def export(
    model: _GainModel,
    family: str,
    out_dir: str,
    dtype: str = "f16",
    metadata_extra: Optional[Dict[str, str]] = None,
    manifest_entry_extra: Optional[dict] = None,
    update_tables: bool = False,
) -> dict:
    """Write ``out_dir/<family>.safetensors`` and create/update ``out_dir/manifest.json``.

    The model's tables must be up to date (``model.update()``); pass ``update_tables=True`` to have the
    exporter call it.  With ``dtype="f16"`` the model is modified in place: weights are rounded to f16
    (see ``round_weights_to_f16``) before anything is written.  Returns the manifest entry.
    """
    if dtype not in ("f16", "f32"):
        raise ValueError("dtype must be 'f16' or 'f32'")
    model.eval()
    if dtype == "f16":
        round_weights_to_f16(model)
    if update_tables:
        model.update(force=True, update_quantiles=True)

    tensors = model_tensors(model, dtype)
    metadata = {
        "format": FORMAT,
        "architecture": model.architecture,
        "family": family,
        "N": str(model.N),
        "M": str(model.M),
        "levels": str(model.levels),
        "precision": str(PRECISION),
        "leaky_relu_slope": str(LEAKY_RELU_SLOPE),
        "weights_dtype": dtype,
    }
    for k, v in (metadata_extra or {}).items():
        if k in REQUIRED_METADATA:
            raise ValueError(f"metadata key {k!r} is set by the exporter")
        metadata[k] = str(v)

    os.makedirs(out_dir, exist_ok=True)
    fname = f"{family}.safetensors"
    path = os.path.join(out_dir, fname)
    write_safetensors(path, tensors, metadata)
    digest = sha256_file(path)

    verify_file(path, tensors, metadata, model)

    mpath = os.path.join(out_dir, "manifest.json")
    manifest = _load_manifest(mpath)
    old = next((e for e in manifest["families"] if e.get("family") == family), None)
    did = decoder_id(tensors, model.architecture, model.levels, metadata["leaky_relu_slope"])
    version, versions = _versions(old, did, metadata.get("steps", "?"))
    entry = {
        "family": family,
        "architecture": model.architecture,
        "file": fname,
        "sha256": digest,
        "levels": model.levels,
        "version": version,
        "decoder_id": did,
        "versions": versions,
        "N": model.N,
        "M": model.M,
    }
    if old and old.get("history"):
        # The evaluated stages of the family's earlier exports (record_kodak extends it).
        entry["history"] = old["history"]
    entry.update(manifest_entry_extra or {})
    for k in ("family", "architecture", "file", "sha256", "levels"):
        if entry[k] != {"family": family, "architecture": model.architecture, "file": fname,
                        "sha256": digest, "levels": model.levels}[k]:
            raise ValueError(f"manifest_entry_extra must not override {k!r}")
    entry = _order_entry(entry)

    fams = manifest["families"]
    for i, e in enumerate(fams):
        if e.get("family") == family:
            fams[i] = entry
            break
    else:
        fams.append(entry)
    with open(mpath + ".tmp", "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(mpath + ".tmp", mpath)

    # Final check: the manifest on disk points at this file with the right digest.
    with open(mpath) as f:
        m2 = json.load(f)
    e2 = [e for e in m2["families"] if e["family"] == family]
    assert len(e2) == 1 and e2[0]["sha256"] == sha256_file(path), "manifest verification failed"
    return entry


@torch.no_grad()
def verify_file(path: str, tensors: Dict[str, torch.Tensor], metadata: Dict[str, str],
                model: Optional[_GainModel] = None) -> None:
    """Reload ``path`` and check names, dtypes, values (bitwise) and metadata; with ``model``, also check
    that the weights converted to f32 are exactly the model's current (possibly f16-rounded) values."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
        if meta != metadata:
            raise AssertionError(f"{path}: metadata mismatch {meta} != {metadata}")
        if keys != set(tensors):
            raise AssertionError(f"{path}: tensor names differ: {sorted(keys ^ set(tensors))}")
        loaded = {k: f.get_tensor(k) for k in keys}
    for k, v in tensors.items():
        w = loaded[k]
        if w.dtype != v.dtype or w.shape != v.shape or not torch.equal(w, v):
            raise AssertionError(f"{path}: tensor {k} differs after reload")
    if model is not None:
        for name, layer in model.transform_layers():
            if isinstance(layer, GDN):
                beta, gamma = layer.effective()
                pairs = [(f"{name}.beta", beta), (f"{name}.gamma", gamma)]
            else:
                pairs = [(f"{name}.weight", layer.weight)]
                if layer.bias is not None:
                    pairs.append((f"{name}.bias", layer.bias))
            for k, ref in pairs:
                if not torch.equal(loaded[k].float(), ref.detach().float()):
                    raise AssertionError(f"{path}: {k} (as f32) differs from the model's value")
    _check_tables(loaded)


def _check_tables(t: Dict[str, torch.Tensor]) -> None:
    """Every row: cdf[0] = 0, strictly increasing up to cdf_len, last = 2^16, zero padding after."""
    for prefix in ("y_eb", "z_eb", "y_gc"):
        if f"{prefix}.cdf" not in t:
            continue
        cdf, cl = t[f"{prefix}.cdf"], t[f"{prefix}.cdf_len"]
        assert cdf.dtype == torch.int32 and cl.dtype == torch.int32
        assert cdf.shape[0] == cl.shape[0] == t[f"{prefix}.offset"].shape[0]
        assert int(cl.max()) == cdf.shape[1]
        for i in range(cdf.shape[0]):
            n = int(cl[i])
            row = cdf[i]
            assert n >= 3 and row[0] == 0 and row[n - 1] == 1 << PRECISION, (prefix, i)
            assert bool((row[1:n] > row[: n - 1]).all()), f"{prefix}.cdf row {i} has an empty bin"
            assert bool((row[n:] == 0).all()), f"{prefix}.cdf row {i} padding not zero"
