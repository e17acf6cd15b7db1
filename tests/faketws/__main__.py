"""``python -m tests.faketws``: the fake TWS with its control socket (see the package doc)."""

import sys

from tests.faketws.control import main

if __name__ == "__main__":
    main(sys.argv[1:])
