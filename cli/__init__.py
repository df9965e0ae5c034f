"""The `nianbao` command line: starts the flows and shows status. Nothing imports it."""
