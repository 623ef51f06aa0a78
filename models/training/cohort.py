"""Entry point of ``npm run cohort -- ...`` (via ``models/training/run``): the synthetic cohort generator.
See ``frcds/cohort/cli.py`` for the options and ``README.md`` ("Synthetic cohort") for the outputs."""
from frcds.cohort.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
