"""Names built from DICOM contents never reach outside the output root.

Crafted SeriesInstanceUIDs (``../x``, absolute paths, ``/``, very long names)
written into real DICOM files, a symlink inside the output root that leads
outside, and temporaries that belong to somebody else: a real batch on a real
Dask ``LocalCluster`` must write and delete only inside the output root, and
only what gpukit made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import gpukit
from gpukit import testing
from gpukit.batch import Manifest, parse_recipe, run_batch
from gpukit.batch.runner import series_folder
from gpukit.safepath import confine, safe_component, sweep_temporaries

CRAFTED = ["../escaped", "/", "..", ".", "a/../../b", "x" * 300, "C:\\evil", "-rf", "name\x00nul", ".hidden"]

RECIPE = {"recipe": {"name": "safety"}, "output": [{"kind": "volume", "name": "hu", "format": "npy", "hu": True}]}


@pytest.mark.parametrize("text", CRAFTED + ["1.2.840.10008.5.1.4", "S1_chest__1.2.3"])
def test_safe_component_is_one_harmless_name(text, tmp_path):
    name = safe_component(text)
    assert name and len(name) <= 64
    assert os.sep not in name and "/" not in name and "\x00" not in name
    assert not name.startswith((".", "-")) and name not in (".", "..")
    assert confine(tmp_path, name) == str(tmp_path / name)       # one component inside the root
    assert Path(name).name == name


def test_safe_component_keeps_distinct_texts_distinct():
    texts = CRAFTED + ["../escaped2", "_escaped", "escaped", "x" * 301, "1.2.3", "1.2.3."]
    assert len({safe_component(t) for t in texts}) == len(texts)
    assert safe_component("1.2.840.113619.2.55.3") == "1.2.840.113619.2.55.3"   # a plain UID stays readable


def test_confine_refuses_escapes_and_outward_symlinks(tmp_path):
    root = tmp_path / "out"
    outside = tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "inner").mkdir()
    os.symlink(outside, root / "leak")
    os.symlink(root / "inner", root / "alias")
    for bad in ("../elsewhere", str(outside / "f"), "leak", "leak/f.png", "inner/../../elsewhere"):
        with pytest.raises(gpukit.UnsafeOutputPathError) as ei:
            confine(root, bad)
        assert isinstance(ei.value, gpukit.GpukitError) and isinstance(ei.value, ValueError)
    assert "symlink" in str(pytest.raises(gpukit.UnsafeOutputPathError, confine, root, "leak/x").value)
    assert confine(root, "alias/f.png") == str(root / "alias" / "f.png")   # a link that stays inside is fine
    assert confine(root, "inner/x/y.nii.gz") == str(root / "inner" / "x" / "y.nii.gz")


def test_sweep_removes_only_listed_runs_temporaries(tmp_path):
    mine, theirs = "0123456789abcdef", "fedcba9876543210"
    (tmp_path / "a").mkdir()
    keep = [tmp_path / "a" / ".tmp-user-file", tmp_path / "a" / f".gpukit-tmp-{theirs}-x.png-1",
            tmp_path / "a" / ".gpukit-tmp-notatoken-x"]
    gone = [tmp_path / "a" / f".gpukit-tmp-{mine}-hu.npy-abc", tmp_path / f".gpukit-tmp-{mine}-z.zarr-d"]
    for p in keep + gone[:1]:
        p.write_bytes(b"1")
    gone[1].mkdir()
    (gone[1] / "chunk").write_bytes(b"1")
    outside = tmp_path.parent / f"outside-{os.getpid()}"
    outside.mkdir(exist_ok=True)
    victim = outside / f".gpukit-tmp-{mine}-victim"
    victim.write_bytes(b"1")
    os.symlink(outside, tmp_path / "a" / "link")            # a symlink is never followed
    os.symlink(victim, tmp_path / "a" / f".gpukit-tmp-{mine}-link")   # nor removed
    try:
        assert sweep_temporaries(tmp_path, [mine]) == 2
        assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)
        assert victim.exists() and os.path.islink(tmp_path / "a" / f".gpukit-tmp-{mine}-link")
    finally:
        victim.unlink()
        outside.rmdir()


def _strip_names(ds, k):
    for kw in ("SeriesNumber", "SeriesDescription"):
        if kw in ds:
            delattr(ds, kw)


def test_batch_with_crafted_uids_writes_only_inside_the_root(tmp_path):
    """The issue's reproduction: three CT slices whose UID is a path, SeriesNumber and description removed."""
    work = tmp_path / "work"
    inp, out = work / "in", work / "out"
    abs_target = tmp_path / "abs_target"
    uids = ["../escaped", str(abs_target), "/", "../" * 20 + "tmp/deep", "9" * 200]
    series = {}
    for n, uid in enumerate(uids):
        s = testing.write_series(inp / f"s{n}", shape=(3, 24, 20), series_uid=uid, seed=n, extra=_strip_names)
        series[uid] = s
    # a folder the escape would have reached, with a user's own temporary that must survive
    (work / "escaped").mkdir(parents=True)
    (work / "escaped" / ".tmp-precious").write_bytes(b"keep me")
    abs_target.mkdir()
    (abs_target / ".tmp-precious").write_bytes(b"keep me too")
    # inside the root: a user's .tmp file and a gpukit temporary of an unknown run are not ours to delete
    out.mkdir(parents=True)
    (out / ".tmp-user").write_bytes(b"x")
    foreign = out / ".gpukit-tmp-00000000000000aa-foreign"
    foreign.write_bytes(b"x")
    # an orphan of an earlier run of this root (listed in its runs file) is cleaned up
    (out / ".gpukit-runs").write_text("00000000000000bb\n")
    orphan = out / ".gpukit-tmp-00000000000000bb-hu.npy-zz"
    orphan.write_bytes(b"x")
    before_outside = sorted(str(p) for p in tmp_path.rglob("*") if out not in p.parents and p != out)

    res = run_batch(inp, out, parse_recipe(RECIPE), n_workers=1, progress=False)

    after_outside = sorted(str(p) for p in tmp_path.rglob("*") if out not in p.parents and p != out)
    assert after_outside == before_outside, "something was written or deleted outside the output root"
    assert (work / "escaped" / ".tmp-precious").read_bytes() == b"keep me"
    assert (abs_target / ".tmp-precious").read_bytes() == b"keep me too"
    assert (out / ".tmp-user").exists() and foreign.exists() and not orphan.exists()
    assert res.counts.get("ok") == len(uids), res.counts
    m = Manifest(out)
    folders = set()
    for uid, s in series.items():
        rec = m.records[uid]
        assert rec["status"] == "ok"
        for o in rec["outputs"]:
            assert not os.path.isabs(o["path"]) and ".." not in Path(o["path"]).parts
            p = out / o["path"]
            assert p.resolve().parent.parent == out.resolve()          # OUT/<one folder>/hu.npy
            np.testing.assert_allclose(np.load(p), s.rescaled(), rtol=0, atol=1e-3)
            folders.add(p.parent.name)
    assert len(folders) == len(uids)                                    # distinct UIDs, distinct folders
    assert all(not f.startswith(".") and len(f) <= 100 for f in folders)
    json.dumps(m.records)   # the manifest is whole


def test_batch_refuses_a_symlink_in_the_root_that_leads_outside(tmp_path):
    inp, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    good = testing.write_series(inp / "good", shape=(3, 24, 20), seed=1)
    trap = testing.write_series(inp / "trap", shape=(3, 24, 20), seed=2)
    outside.mkdir()
    out.mkdir()
    found = gpukit.scan(inp)
    info = next(s for s in found.volumes if s.uid == trap.series_uid)
    os.symlink(outside, out / series_folder(info.to_dict()))

    res = run_batch(inp, out, parse_recipe(RECIPE), n_workers=1, progress=False)

    assert list(outside.iterdir()) == [], "wrote through a symlink to outside the output root"
    m = Manifest(out)
    rec = m.records[trap.series_uid]
    assert rec["status"] == "failed" and rec["error"] == "UnsafeOutputPathError" and "symlink" in rec["message"]
    assert m.records[good.series_uid]["status"] == "ok" and res.counts == {"ok": 1, "failed": 1}


def test_manifest_row_naming_a_path_outside_is_not_trusted(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"s")
    from gpukit.batch.manifest import path_size, sha256_path

    rec = {"key": "k", "status": "ok",
           "outputs": [{"path": "../secret.bin", "bytes": path_size(secret), "sha256": sha256_path(secret)}]}
    m = Manifest(out)
    m.append(rec)
    assert not Manifest(out).is_done("k")     # a rerun redoes it rather than trusting a path outside the root
