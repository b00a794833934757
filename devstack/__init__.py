"""The local stack: AWS emulator, resources from infra/, the API server and the runner."""
