"""The older name of ``python -m training choose_tta``, quoted in cards and documents."""

from training.commands.choose_tta import main

if __name__ == "__main__":
    raise SystemExit(main())
