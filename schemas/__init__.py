"""Data definitions: the form definition and its models, the database tables, issues, settings."""
