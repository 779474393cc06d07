"""Room layout estimation (ST-PIO, arXiv 1707.00383): LSUN/Hedau data formats, the LSUN
toolkit's metrics and a procedural cuboid-room generator that writes LSUN's format."""

BUILTINS = [
    ("tasks", "room_layout", "robench.tasks.room_layout.task:RoomLayoutTask",
     "cuboid room layout from one image (surfaces, LSUN type, keypoints); LSUN pixel/corner error"),
    ("methods", "prior", "robench.tasks.room_layout.methods.prior:Prior",
     "reference floor: the most frequent training type with its mean keypoints", "room_layout"),
    ("methods", "geometric", "robench.tasks.room_layout.methods.geometric:Geometric",
     "Hedau-style, no training: segments, vanishing points, box hypotheses scored on edges",
     "room_layout"),
    ("methods", "fcn", "robench.tasks.room_layout.methods.fcn:FCN",
     "small fully convolutional network (surfaces + edges + type) trained from scratch",
     "room_layout"),
    ("methods", "st-pio", "robench.tasks.room_layout.methods.stpio:STPIO",
     "ST-PIO: semantic transfer (clutter + layout pre-training) and physics-inspired "
     "refinement (Zhao et al. 2017)", "room_layout"),
]
