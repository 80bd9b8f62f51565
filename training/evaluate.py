"""The older name of ``python -m training evaluate``, quoted in cards and documents."""

from training.commands.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
