"""Command-line arguments that several ``python -m training`` commands share."""

import argparse


def measuring_parser(command: str, doc: str, weights: bool = False,
                     device: str = "cpu") -> argparse.ArgumentParser:
    """The parser of a command that measures weights through the app's classifier on FER-2013:
    described by the first line of its docstring ``doc``, with ``--weights`` (where ``weights``),
    ``--data`` and ``--device``."""
    parser = argparse.ArgumentParser(prog=f"python -m training {command}", description=doc.split("\n")[0])
    if weights:
        parser.add_argument("--weights", required=True,
                            help="a .safetensors file with its .json card beside it")
    parser.add_argument("--data", required=True, help="fer2013 .npz, .csv or image folder")
    parser.add_argument("--device", default=device)
    return parser
