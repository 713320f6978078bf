"""Stream processors: Faust apps that turn events into new events."""
