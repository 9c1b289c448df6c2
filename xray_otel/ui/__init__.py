"""The web UI: static pages under /ui that read the public REST API, nothing else."""
