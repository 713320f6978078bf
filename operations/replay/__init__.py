"""Stream replay: plan offset ranges, rebuild a PostgreSQL read model blue/green, switch."""
