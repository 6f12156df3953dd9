"""Batch hardening (issue 10: D, G, defects 7, 8, 9, 12): a full or read-only disk, torn manifests,
byte-identical reruns, input path spellings, backend checks up front, file modes, MR windows.

Most tests avoid a Dask cluster (they drive the manifest, ``process_series`` or a batch whose input has no
volume series); the two that need one share nothing and use one worker. The full and read-only disks are
real tmpfs mounts, skipped with the reason where mounting is not allowed.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import can_mount_tmpfs, data_path
from gpukit import testing
from gpukit.batch import Manifest, OutputWriteError, load_recipe, parse_recipe, run_batch
from gpukit.batch.runner import process_series, series_folder


CAN_MOUNT = can_mount_tmpfs()
needs_mount = pytest.mark.skipif(not CAN_MOUNT, reason="needs permission to mount a tmpfs (root on Linux) to make "
                                                       "a real full or read-only disk")


class _tmpfs:
    """A real tmpfs of ``size`` mounted on ``path`` (``ro``: read-only) for the ``with`` block."""

    def __init__(self, path: Path, size: str = "64k", ro: bool = False):
        self.path, self.opts = Path(path), f"size={size}" + (",ro" if ro else "")

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", self.opts, "tmpfs", str(self.path)], check=True)
        return self.path

    def __exit__(self, *exc):
        subprocess.run(["umount", str(self.path)], check=True)


def _fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of ``folder`` until at most ``leave`` bytes (rounded to blocks) are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize - leave
    if free > 0:
        with open(folder / "ballast", "wb") as fh:
            try:
                fh.write(b"\0" * free)
            except OSError:
                pass


def _lines_all_parse(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), raw[-80:]
    return [json.loads(ln) for ln in raw.decode("utf-8").splitlines() if ln.strip()]


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpukit.cli", *argv], capture_output=True, text=True, timeout=300)


# -- D: the manifest ----------------------------------------------------------------------------------------------
def test_torn_last_line_is_cut_away_before_the_next_append(tmp_path):
    good = {"key": "1.2.3", "status": "failed", "error": "X", "message": "m"}
    (tmp_path / "manifest.jsonl").write_bytes((json.dumps(good) + "\n").encode() + b'{"key": "1.2.4", "stat')
    m = Manifest(tmp_path)
    assert m.torn_lines == 1 and set(m.records) == {"1.2.3"}
    m.append({"key": "1.2.4", "status": "ok", "outputs": []})
    recs = _lines_all_parse(tmp_path / "manifest.jsonl")
    assert [r["key"] for r in recs] == ["1.2.3", "1.2.4"]            # the torn line is gone, not kept forever
    assert Manifest(tmp_path).torn_lines == 0


def test_broken_line_inside_the_manifest_is_rewritten_away(tmp_path):
    """A broken line left by an older gpukit (which started the next record on a new line) is removed too."""
    a, b = {"key": "a", "status": "ok"}, {"key": "b", "status": "failed"}
    (tmp_path / "manifest.jsonl").write_bytes(f'{json.dumps(a)}\n{{"key": "x", "sta\n{json.dumps(b)}\n'.encode())
    m = Manifest(tmp_path)
    assert m.torn_lines == 1
    m.append({"key": "c", "status": "ok"})
    assert [r["key"] for r in _lines_all_parse(tmp_path / "manifest.jsonl")] == ["a", "b", "c"]


def test_complete_but_unterminated_last_line_is_kept(tmp_path):
    (tmp_path / "manifest.jsonl").write_bytes(json.dumps({"key": "a", "status": "ok"}).encode())
    m = Manifest(tmp_path)
    assert m.torn_lines == 0 and "a" in m.records
    m.append({"key": "b", "status": "ok"})
    assert [r["key"] for r in _lines_all_parse(tmp_path / "manifest.jsonl")] == ["a", "b"]


@needs_mount
def test_manifest_append_on_a_full_disk_raises_and_leaves_no_torn_line(tmp_path):
    out = tmp_path / "out"
    with _tmpfs(out, "64k"):
        m = Manifest(out)
        m.append({"key": "first", "status": "ok"})
        _fill(out)
        with pytest.raises(OutputWriteError) as ei:
            m.append({"key": "big", "status": "failed", "message": "x" * 20000})
        assert "manifest.jsonl" in str(ei.value) and "no space" in str(ei.value)
        assert isinstance(ei.value, OSError)
        (out / "ballast").unlink()
        assert [r["key"] for r in _lines_all_parse(out / "manifest.jsonl")] == ["first"]


def _junk_input(root: Path, n: int = 60) -> Path:
    """Input whose every entry is a skipped file with a long name (no volume: no Dask cluster is started)."""
    for k in range(n):
        testing.write_not_dicom(root / f"not_dicom_{k:03d}_{'n' * 150}.txt")
    return root


@needs_mount
def test_cli_batch_on_a_full_disk_exits_4_with_one_line(tmp_path):
    src = _junk_input(tmp_path / "in")
    out = tmp_path / "out"
    with _tmpfs(out, "64k"):
        _fill(out, leave=4096)
        r = _cli("batch", str(src), str(out), "--json")
        assert r.returncode == 4, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        msg = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(msg) == 1 and "no space left" in msg[0] and str(out / "manifest.jsonl") in msg[0], msg
        _lines_all_parse(out / "manifest.jsonl")                  # whatever was written is whole lines
        (out / "ballast").unlink()
        r = _cli("batch", str(src), str(out), "--json")             # room again: the rerun completes
        assert r.returncode == 0, r.stdout + r.stderr
        assert len(_lines_all_parse(out / "manifest.jsonl")) == 60


@needs_mount
def test_cli_batch_on_a_read_only_output_exits_4_with_one_line(tmp_path):
    src = _junk_input(tmp_path / "in", n=2)
    out = tmp_path / "out"
    with _tmpfs(out, "64k", ro=True):
        r = _cli("batch", str(src), str(out))
        assert r.returncode == 4, r.stdout + r.stderr
        msg = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(msg) == 1 and "read-only" in msg[0] and str(out) in msg[0] and "Traceback" not in r.stderr, msg


@needs_mount
def test_series_that_runs_out_of_space_leaves_none_of_its_files(tmp_path):
    """The small PNG fits, the NIfTI does not: the series fails naming the NIfTI, and the PNG is removed too."""
    s = testing.write_series(tmp_path / "in", shape=(24, 96, 96), seed=1)
    import gpukit

    info = gpukit.scan(tmp_path / "in").volumes[0]
    assert info.uid == s.series_uid
    out = tmp_path / "out"
    folder = out / series_folder(info.to_dict())
    recipe = parse_recipe({"output": [{"kind": "reslice", "name": "small", "plane": "axial", "window": [40, 400]},
                                      {"kind": "volume", "name": "stored", "format": "nifti"}]}).to_dict()
    with _tmpfs(folder, "64k"):
        rec = process_series(info.files, info.id, str(folder), recipe,
                             str(out), backend="numpy")
        assert rec["status"] == "failed" and rec["kind"] == "output", rec
        assert rec["error"] == "OutputWriteError"
        assert "no space left" in rec["message"] and "stored.nii.gz" in rec["message"]
        assert ".gpukit-tmp" not in rec["message"]
        assert list(folder.iterdir()) == []


# -- G: reproducible outputs, input spellings, symlinked folders -------------------------------------------------------
def test_nifti_gz_reruns_are_byte_identical_and_files_get_the_usual_mode(tmp_path):
    import gpukit

    vol = gpukit.Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.diag([0.5, 0.5, 2.0, 1.0]),
                        {"modality": "CT"})
    vol.to_nifti(tmp_path / "a.nii.gz")
    time.sleep(1.1)
    vol.to_nifti(tmp_path / "b.nii.gz")
    a, b = (tmp_path / "a.nii.gz").read_bytes(), (tmp_path / "b.nii.gz").read_bytes()
    assert a[:2] == b"\x1f\x8b" and a[4:8] == b"\0\0\0\0"           # gzip header MTIME field is 0
    assert a == b
    umask = os.umask(0o022)
    os.umask(umask)
    for p in (tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"):         # defect 8: not 0600
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    assert gzip.decompress(a)


def test_skipped_and_non_volume_rows_are_keyed_by_resolved_path_and_list_their_files(tmp_path, monkeypatch):
    """G: a rerun spelling the input differently adds no duplicate rows. 12: non-volume rows name their files."""
    src = tmp_path / "in"
    testing.write_not_dicom(src / "notes.txt")
    testing.write_rgb_secondary_capture(src / "screens" / "shot.dcm")
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    run_batch("in", out, progress=False)
    run_batch(str(src.resolve()), out, progress=False)
    run_batch(str(tmp_path / "in" / ".." / "in"), out, progress=False)
    recs = _lines_all_parse(out / "manifest.jsonl")
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)) == 2, keys
    skipped = next(r for r in recs if r["status"] == "skipped_file")
    assert skipped["path"] == str((src / "notes.txt").resolve())
    other = next(r for r in recs if r["status"] == "not_volume")
    assert other["files"] == 1 and len(other["paths"]) == 1 and other["paths"][0].endswith("shot.dcm")
    assert other["more_files"] == 0


def test_symlinked_input_folder_is_followed_or_listed(tmp_path):
    """G: a symlinked folder in the input is followed (once) or listed as skipped with the reason, never silently
    dropped; a symlink loop does not hang the scan."""
    import gpukit

    real = tmp_path / "elsewhere" / "series"
    s = testing.write_series(real, shape=(4, 16, 12), seed=2)
    src = tmp_path / "in"
    src.mkdir()
    (src / "linked").symlink_to(real, target_is_directory=True)
    (src / "loop").symlink_to(src, target_is_directory=True)
    (src / "again").symlink_to(real, target_is_directory=True)        # the same folder through a second link
    found = gpukit.scan(src)
    vols = [v for v in found.volumes if v.uid == s.series_uid]
    assert len(vols) == 1 and len(vols[0].files) == 4               # followed once: not again through a link
    assert not found.skipped


# -- defect 7: the backend is checked before the run -------------------------------------------------------------------
def test_cli_batch_unavailable_backend_exits_3_before_running(tmp_path):
    from gpukit.backends import lookup

    if lookup("cupy").is_available():
        pytest.skip("cupy can run here: nothing is missing")
    testing.write_series(tmp_path / "in" / "a", shape=(4, 16, 12), seed=3)
    r = _cli("batch", str(tmp_path / "in"), str(tmp_path / "out"), "--backend", "cupy")
    assert r.returncode == 3, r.stdout + r.stderr
    msg = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(msg) == 1 and "cupy" in msg[0] and "missing" in msg[0], msg
    assert not (tmp_path / "out" / "manifest.jsonl").exists()       # no series was run (and failed)
    r = _cli("batch", str(tmp_path / "in"), str(tmp_path / "out"), "--backend", "fast")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "out").exists()      # refused before the output root was made or any series ran


# -- defects 8 and 9: the default recipe on a sagittal MR ------------------------------------------------------
def test_default_recipe_on_sagittal_mr_is_not_white_and_skips_what_makes_no_sense(tmp_path):
    from PIL import Image

    src = data_path("mr_siemens_sag_fieldmap")
    out = tmp_path / "out"
    recipe = load_recipe(None).to_dict()
    # the default axial slab stack, also along the sagittal axis (where this series has its slices): its default
    # CT window (lung) must not apply to MR
    slab = dict(next(o for o in recipe["output"] if o["name"] == "axial_mip_slab"), name="sag_slab",
                plane="sagittal", thickness_mm=10, step_mm=5)
    recipe["output"].append(slab)
    res = run_batch(src, out, parse_recipe(recipe), n_workers=1, progress=False)
    ok = [r for r in res.records if r["status"] == "ok"]
    assert ok and res.ok, [(r.get("error"), r.get("message")) for r in res.records]
    umask = os.umask(0o022)
    os.umask(umask)
    for rec in ok:
        assert rec["modality"] == "MR"
        skipped = {s["name"]: s["reason"] for s in rec.get("skipped_outputs", [])}
        # a 5-slice sagittal series: axial and coronal images would be 5 px wide
        assert {"axial_mip_slab", "coronal"} <= set(skipped), skipped
        assert all("px" in why for why in skipped.values())
        names = [Path(o["path"]).name for o in rec["outputs"]]
        assert not any(n.startswith(("axial_mip_slab", "coronal")) for n in names), names
        pngs = [out / o["path"] for o in rec["outputs"] if o["path"].endswith(".png")]
        assert any(p.name.startswith("sag_slab_") for p in pngs) and any(p.name == "sagittal.png" for p in pngs)
        for p in pngs:
            a = np.asarray(Image.open(p))
            # lung window on MR: tissue 255, background 229; here: a dark background, few white pixels
            assert (a >= 200).mean() < 0.2 and (a >= 250).mean() < 0.2, (p.name, float((a >= 200).mean()))
            assert a.std() > 10                                         # a picture, not a flat field
        for o in rec["outputs"]:
            if o["path"].endswith(".nii.gz"):
                assert (out / o["path"]).stat().st_mode & 0o777 == 0o666 & ~umask
