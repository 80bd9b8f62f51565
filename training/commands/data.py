"""Copy a dataset into the compact or the memory-mapped format, or print its split sizes.

    python -m training data pack fer2013.csv fer2013.packed.npz    # about two thirds of the raw size
    python -m training data pack-npy fer2013.npz fer2013_npy/      # memory-mapped, streamed to training
    python -m training data info fer2013.npz

The formats are described in ``training.data``.
"""

import argparse
import sys

import torch

from fer_desktop.emotions import EMOTIONS
from training.data import SPLITS, load_dataset, pack, write_npy_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_pack = sub.add_parser("pack", help="write the compact .npz copy of a dataset")
    p_pack.add_argument("src", help="fer2013 .npz, .csv or image folder")
    p_pack.add_argument("dst", help="output .npz")
    p_npy = sub.add_parser("pack-npy", help="write a folder of .npy files that training memory-maps and streams")
    p_npy.add_argument("src", help="fer2013 .npz, .csv or image folder")
    p_npy.add_argument("dst", help="output folder")
    p_info = sub.add_parser("info", help="print split sizes and class counts")
    p_info.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "pack":
        dst = pack(args.src, args.dst)
        check = load_dataset(dst)
        print(f"{dst}: {dst.stat().st_size / 2**20:.1f} MiB, splits {check.sizes()}")
    elif args.command == "pack-npy":
        dst = write_npy_folder(args.src, args.dst)
        print(f"{dst}: splits {load_dataset(dst).sizes()}")
    else:
        data = load_dataset(args.path)
        for name in SPLITS:
            y = data.split(name)[1]
            print(name, len(y), torch.bincount(y, minlength=len(EMOTIONS)).tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
