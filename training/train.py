"""The older name of ``python -m training train``, quoted in cards and documents."""

from training.commands.train import main

if __name__ == "__main__":
    raise SystemExit(main())
