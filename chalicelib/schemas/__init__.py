"""Request/response models: one per direction (Create, Update, Public), unknown fields refused."""
