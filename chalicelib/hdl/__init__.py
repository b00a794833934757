"""HDL front end: one parse (pyslang) for the runner's project model and the modules API."""
