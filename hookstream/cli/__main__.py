"""`python -m hookstream.cli`."""

from hookstream.cli.main import main

raise SystemExit(main())
