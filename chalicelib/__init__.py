"""a6hub backend: everything the Lambda needs, importable without chalice outside api/."""
