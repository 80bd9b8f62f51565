"""The older name of ``python -m training first_steps``, quoted in cards and documents."""

from training.commands.first_steps import main

if __name__ == "__main__":
    raise SystemExit(main())
