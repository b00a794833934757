"""Use cases: each function takes a caller and plain values, returns records or raises DomainError."""
