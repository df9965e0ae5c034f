"""The work, as plain typed functions: build, read, check, store, consolidate, render. No Prefect here."""
