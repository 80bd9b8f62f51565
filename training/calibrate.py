"""The older name of ``python -m training calibrate``, quoted in cards and documents."""

from training.commands.calibrate import main

if __name__ == "__main__":
    raise SystemExit(main())
