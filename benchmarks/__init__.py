"""Speed measurements, each a ratio measured within one run (comparable across machines)."""
