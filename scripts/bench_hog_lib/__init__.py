"""HOG's boxes per person on the demo's scenes, with the server's merging and without it."""
