"""Pack run outputs into one tar split into fixed-size parts, and join them back.

Parts are consecutive slices of one tar stream, so besides ``python -m
training bundle join``, ``cat bundle.tar.part* > bundle.tar && tar -xf bundle.tar``
reassembles them. Files are appended to the tar as they are finished; only the
tail parts change, so parts written earlier stay valid.
"""

import argparse
import sys
import tarfile
from pathlib import Path

from training.bundle_parts import BUNDLE_NAME, join_parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training bundle", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_join = sub.add_parser("join", help="reassemble the parts and extract them")
    p_join.add_argument("parts_dir")
    p_join.add_argument("dest", help="folder to extract into")
    args = parser.parse_args(argv)
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = join_parts(Path(args.parts_dir), dest / BUNDLE_NAME)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()
    print(f"extracted into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
