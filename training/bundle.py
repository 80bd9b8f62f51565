"""The older name of ``python -m training bundle``, quoted in cards and documents."""

from training.commands.bundle import main

if __name__ == "__main__":
    raise SystemExit(main())
