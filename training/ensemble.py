"""The older name of ``python -m training ensemble``, quoted in cards and documents."""

from training.commands.ensemble import main

if __name__ == "__main__":
    raise SystemExit(main())
