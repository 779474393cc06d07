"""Room layout estimation (ST-PIO, arXiv 1707.00383): LSUN/Hedau data formats, the LSUN
toolkit's metrics and a procedural cuboid-room generator that writes LSUN's format."""
