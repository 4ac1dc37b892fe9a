from deepmt.cli import main

raise SystemExit(main())
