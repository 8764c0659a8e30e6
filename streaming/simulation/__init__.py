"""Building blocks of the traffic simulator: dimensions, viewer behaviour, bad payloads, ground truth."""
