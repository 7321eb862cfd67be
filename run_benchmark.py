#!/usr/bin/env python
"""recbole-mmkd's command line from a source checkout: the same as the installed
``recbole-mmkd`` console script (``recbole_mmkd/cli.py``)."""

from recbole_mmkd.cli import main

if __name__ == "__main__":
    main()
