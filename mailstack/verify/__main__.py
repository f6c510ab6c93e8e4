"""`python -m mailstack.verify`."""

import sys

from mailstack.verify import main

sys.exit(main())
