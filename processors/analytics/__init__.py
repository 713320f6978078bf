"""Windowed aggregation of analytics, model usage and bias scores into MetricWindowClosed."""
