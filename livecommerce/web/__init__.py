"""HTTP surface: middleware, JSON helpers, accounts API, health and metrics, and the pages."""
