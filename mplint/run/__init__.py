"""Running mplint over files: discovery, the prefilter, the plan of units, the cache and the workers."""
