"""REST queries over stored runs and steps, and the pure funnel analysis."""
