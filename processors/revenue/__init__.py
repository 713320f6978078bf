"""Revenue projection: RevenueProjectionRequested in, RevenueProjected out."""
