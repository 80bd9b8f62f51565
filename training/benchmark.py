"""The older name of ``python -m training benchmark``, quoted in cards and documents."""

from training.commands.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
