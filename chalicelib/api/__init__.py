"""HTTP edge: blueprints with thin routes. The only package that imports chalice."""
