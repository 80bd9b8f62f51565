"""The older name of ``python -m training train_all``, quoted in cards and documents."""

from training.commands.train_all import main

if __name__ == "__main__":
    raise SystemExit(main())
