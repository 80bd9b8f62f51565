"""Run outputs as one tar kept in fixed-size parts: appended to as files are finished (only the tail
parts change, so parts written earlier stay valid), and joined back."""

import os
import tarfile
from pathlib import Path

PART_BYTES = 15 * 2**20
BUNDLE_NAME = "bundle.tar"


def append_to_bundle(tar_path: Path, files: list[Path], root: Path) -> None:
    """Add ``files`` to the tar at ``tar_path`` under their paths relative to ``root``."""
    with tarfile.open(tar_path, "a" if tar_path.exists() else "w", format=tarfile.PAX_FORMAT) as tar:
        for file in files:
            tar.add(file, arcname=file.relative_to(root).as_posix())


def split_into_parts(tar_path: Path, parts_dir: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """Write ``<name>.partNNN`` slices of the tar to ``parts_dir`` (unchanged parts are not rewritten)."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with open(tar_path, "rb") as src:
        index = 0
        while chunk := src.read(part_bytes):
            part = parts_dir / f"{tar_path.name}.part{index:03d}"
            if not (part.is_file() and part.stat().st_size == len(chunk) and part.read_bytes() == chunk):
                tmp = part.with_name(part.name + ".tmp")
                tmp.write_bytes(chunk)
                os.replace(tmp, part)
            written.append(part)
            index += 1
    for stale in parts_dir.glob(f"{tar_path.name}.part*"):
        if stale not in written:
            stale.unlink()
    return written


def join_parts(parts_dir: Path, out_tar: Path) -> Path:
    parts = sorted(Path(parts_dir).glob(f"{BUNDLE_NAME}.part[0-9][0-9][0-9]"))
    if not parts:
        raise FileNotFoundError(f"{parts_dir}: no {BUNDLE_NAME}.partNNN files")
    with open(out_tar, "wb") as dst:
        for part in parts:
            dst.write(part.read_bytes())
    return Path(out_tar)
