"""The job runner: polls the jobs queue and runs each job's tools inside a sandbox."""
