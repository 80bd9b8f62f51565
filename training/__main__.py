"""Train, measure and ship the emotion models: ``python -m training <command> [options]``.

``python -m training <command> --help`` describes one command.
"""

import argparse
import ast
import importlib
import sys
from pathlib import Path

COMMANDS = ("train", "train_all", "evaluate", "calibrate", "choose_tta", "ensemble", "export", "benchmark",
            "first_steps", "data", "bundle")


def summary(command: str) -> str:
    """The first line of a command's docstring, read without importing it (torch takes seconds to load)."""
    source = (Path(__file__).parent / "commands" / f"{command}.py").read_text(encoding="utf-8")
    return (ast.get_docstring(ast.parse(source)) or "").split("\n")[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for command in COMMANDS:
        sub.add_parser(command, help=summary(command), add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Only the command's name is parsed here; its own parser reads the rest (--help included).
    command = build_parser().parse_args(argv[:1]).command
    return importlib.import_module(f"training.commands.{command}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
