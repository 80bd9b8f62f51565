"""The older name of ``python -m training export``, quoted in cards and documents."""

from training.commands.export import main

if __name__ == "__main__":
    raise SystemExit(main())
