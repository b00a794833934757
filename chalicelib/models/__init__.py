"""PynamoDB models. Each module lists the access patterns its tables serve; none needs a Scan."""
