"""The 11 LSUN room layout types (0-10) as data.

Surface labels (values of a segmentation)
-----------------------------------------
    1 frontal wall, 2 left wall, 3 right wall, 4 floor, 5 ceiling  (0: unlabelled)

This is the semantic convention of the relabelled LSUN layouts (leVirve/lsun-room,
``lsun_room/label.py``: ``Layout.frontal=1 ... ceiling=5``) that robench uses everywhere.
Two other conventions exist and are *not* this one:

* the official toolkit's ``getSegmentation.m`` (and the released ``layout_seg/*.mat``)
  numbers regions by connected-component order, so those label values carry no meaning;
  pixel error is invariant to label permutations, so it does not matter for the metric;
* the toolkit's ``RoomLayoutTypes.m`` and the Hedau dataset index surfaces as
  1 floor, 2 middle (frontal) wall, 3 right wall, 4 left wall, 5 ceiling
  (see :data:`HEDAU_TO_LSUN`).

Which wall is which depends on the type: with three walls visible they are left,
frontal, right in image order; with two walls (types 3, 4, 5, 10) they are left and right
(no frontal); with one wall (types 6, 8, 9) it is the frontal wall.  The set of visible
surfaces therefore determines the type uniquely, and so does the triple
(number of walls, floor visible, ceiling visible) — see :func:`room_type_from_surfaces`.

Keypoints
---------
Each type has K keypoints (2-8) in a fixed order.  A keypoint is either an *inner corner*
(the projection of a room corner where three surfaces meet, inside the image) or a
*border point* (where the edge between two surfaces leaves the image).  The order below
was taken from the LSUN toolkit (``RoomLayoutTypes.m``: ``lines`` and ``cornermap``, which
maps each keypoint to one of type 0's eight points) together with leVirve/lsun-room's
``label.py`` (which surfaces each keypoint bounds), both read via code search:

=====  ======  ==================================================================
type   K       keypoints (1-based, as in the files)
=====  ======  ==================================================================
0      8       1 corner(F,L,C)  2 border(L,C)  3 corner(F,L,Fl)  4 border(L,Fl)
               5 corner(F,R,Fl) 6 border(R,Fl) 7 corner(F,R,C)   8 border(R,C)
1      6       1 corner(F,L,Fl) 2 border(F,L)  3 border(L,Fl)
               4 corner(F,R,Fl) 5 border(F,R)  6 border(R,Fl)
2      6       1 corner(F,L,C)  2 border(L,C)  3 border(F,L)
               4 corner(F,R,C)  5 border(R,C)  6 border(F,R)
3      4       1 corner(L,R,C)  2 border(L,C)  3 border(L,R)  4 border(R,C)
4      4       1 corner(L,R,Fl) 2 border(L,Fl) 3 border(L,R)  4 border(R,Fl)
5      6       1 corner(L,R,C)  2 border(L,C)  3 border(R,C)
               4 corner(L,R,Fl) 5 border(L,Fl) 6 border(R,Fl)
6      4       1,2 left/right end of edge(F,C); 3,4 left/right end of edge(F,Fl)
7      4       1,2 top/bottom end of edge(L,F); 3,4 top/bottom end of edge(F,R)
8      2       1,2 left/right end of edge(F,C)
9      2       1,2 left/right end of edge(F,Fl)
10     2       1,2 top/bottom end of edge(L,R)
=====  ======  ==================================================================

(F frontal, L left, R right, Fl floor, C ceiling.)  In words, type 0 goes round the
frontal wall top-left, bottom-left, bottom-right, top-right, each inner corner followed by
the border point of the edge leaving it.  Type 7 has no ``cornermap`` in the toolkit; its
order (1 top of the left edge, 2 bottom, 3 top of the right edge, 4 bottom) is the one
that makes the toolkit's region polygon ``[2 1 3 4]`` simple and clockwise like every other
region polygon in ``RoomLayoutTypes.m``.

In files keypoints are (x, y) in the toolkit's 1-based pixel coordinates; in memory
(:class:`~robench.tasks.room_layout.formats.LayoutSample`) they are 0-based: the centre of
pixel ``[row, col]`` is ``(x, y) = (col, row)``.  Border points lie on the first/last pixel
centres (x in {0, W-1} or y in {0, H-1}), the range the toolkit clamps points to.
"""

from __future__ import annotations

from dataclasses import dataclass

FRONTAL, LEFT, RIGHT, FLOOR, CEILING = 1, 2, 3, 4, 5
UNLABELLED = 0
SURFACE_NAMES = {FRONTAL: "frontal", LEFT: "left", RIGHT: "right", FLOOR: "floor",
                 CEILING: "ceiling"}
WALLS = frozenset({FRONTAL, LEFT, RIGHT})

# Hedau `fields` / toolkit RoomLayoutTypes.m region index -> robench label (0, 6: none).
HEDAU_TO_LSUN = {1: FLOOR, 2: FRONTAL, 3: RIGHT, 4: LEFT, 5: CEILING}
LSUN_TO_HEDAU = {v: k for k, v in HEDAU_TO_LSUN.items()}


@dataclass(frozen=True)
class Keypoint:
    """One keypoint of a room type.

    ``surfaces``: the 3 surfaces meeting at an inner corner, or the 2 surfaces whose edge
    ends at the image border.  ``end``: for an edge that crosses the whole image (no inner
    corner on it) which of its two border ends: "left"/"right" (smaller/larger x) or
    "top"/"bottom" (smaller/larger y); None otherwise."""
    surfaces: frozenset[int]
    end: str | None = None

    @property
    def is_corner(self) -> bool:
        return len(self.surfaces) == 3


@dataclass(frozen=True)
class RoomType:
    """type_id 0-10; surfaces: visible labels; keypoints in LSUN order;
    lines: keypoint index pairs (0-based) joined by a layout edge, as in the toolkit."""
    type_id: int
    surfaces: frozenset[int]
    keypoints: tuple[Keypoint, ...]
    lines: tuple[tuple[int, int], ...]

    @property
    def n_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def corners(self) -> frozenset[frozenset[int]]:
        """Surface triples of the inner corners (room corners inside the image)."""
        return frozenset(k.surfaces for k in self.keypoints if k.is_corner)

    @property
    def edges(self) -> frozenset[frozenset[int]]:
        """Surface pairs whose common edge is visible."""
        out = set()
        for a, b in self.lines:
            common = self.keypoints[a].surfaces & self.keypoints[b].surfaces
            assert len(common) == 2, (self.type_id, a, b)
            out.add(frozenset(common))
        return frozenset(out)

    @property
    def n_walls(self) -> int:
        return len(self.surfaces & WALLS)


def _c(*s: int) -> Keypoint:
    return Keypoint(frozenset(s))


def _b(a: int, b: int, end: str | None = None) -> Keypoint:
    return Keypoint(frozenset((a, b)), end)


F, L, R, Fl, C = FRONTAL, LEFT, RIGHT, FLOOR, CEILING

# Lines are the toolkit's RoomLayoutTypes.m `lines`, converted to 0-based indices.
ROOM_TYPES: tuple[RoomType, ...] = (
    RoomType(0, frozenset({F, L, R, Fl, C}),
             (_c(F, L, C), _b(L, C), _c(F, L, Fl), _b(L, Fl),
              _c(F, R, Fl), _b(R, Fl), _c(F, R, C), _b(R, C)),
             ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (2, 4), (4, 6), (6, 0))),
    RoomType(1, frozenset({F, L, R, Fl}),
             (_c(F, L, Fl), _b(F, L), _b(L, Fl), _c(F, R, Fl), _b(F, R), _b(R, Fl)),
             ((0, 1), (0, 2), (0, 3), (3, 4), (3, 5))),
    RoomType(2, frozenset({F, L, R, C}),
             (_c(F, L, C), _b(L, C), _b(F, L), _c(F, R, C), _b(R, C), _b(F, R)),
             ((0, 1), (0, 2), (0, 3), (3, 4), (3, 5))),
    RoomType(3, frozenset({L, R, C}),
             (_c(L, R, C), _b(L, C), _b(L, R), _b(R, C)),
             ((0, 1), (0, 2), (0, 3))),
    RoomType(4, frozenset({L, R, Fl}),
             (_c(L, R, Fl), _b(L, Fl), _b(L, R), _b(R, Fl)),
             ((0, 1), (0, 2), (0, 3))),
    RoomType(5, frozenset({L, R, Fl, C}),
             (_c(L, R, C), _b(L, C), _b(R, C), _c(L, R, Fl), _b(L, Fl), _b(R, Fl)),
             ((0, 1), (0, 2), (0, 3), (3, 4), (3, 5))),
    RoomType(6, frozenset({F, Fl, C}),
             (_b(F, C, "left"), _b(F, C, "right"), _b(F, Fl, "left"), _b(F, Fl, "right")),
             ((0, 1), (2, 3))),
    RoomType(7, frozenset({F, L, R}),
             (_b(L, F, "top"), _b(L, F, "bottom"), _b(F, R, "top"), _b(F, R, "bottom")),
             ((0, 1), (2, 3))),
    RoomType(8, frozenset({F, C}), (_b(F, C, "left"), _b(F, C, "right")), ((0, 1),)),
    RoomType(9, frozenset({F, Fl}), (_b(F, Fl, "left"), _b(F, Fl, "right")), ((0, 1),)),
    RoomType(10, frozenset({L, R}), (_b(L, R, "top"), _b(L, R, "bottom")), ((0, 1),)),
)

N_ROOM_TYPES = len(ROOM_TYPES)
N_KEYPOINTS = tuple(t.n_keypoints for t in ROOM_TYPES)  # (8, 6, 6, 4, 4, 6, 4, 4, 2, 2, 2)

_BY_COUNTS = {(t.n_walls, FLOOR in t.surfaces, CEILING in t.surfaces): t.type_id
              for t in ROOM_TYPES}
_BY_SURFACES = {t.surfaces: t.type_id for t in ROOM_TYPES}


def room_type(type_id: int) -> RoomType:
    """The RoomType with LSUN id ``type_id`` (0-10); ValueError otherwise."""
    if not 0 <= int(type_id) < N_ROOM_TYPES or int(type_id) != type_id:
        raise ValueError(f"LSUN room type must be an integer 0..10, got {type_id!r}")
    return ROOM_TYPES[int(type_id)]


def room_type_from_surfaces(surfaces) -> int:
    """LSUN type of a set of visible surface labels, or -1 if no type has them.

    Exact label sets (robench convention) are matched first; otherwise walls are counted
    whatever they are called, so e.g. Hedau's {middle wall, left wall, floor} is type 4."""
    s = frozenset(int(x) for x in surfaces) - {UNLABELLED}
    if s in _BY_SURFACES:
        return _BY_SURFACES[s]
    if not s <= set(SURFACE_NAMES):
        return -1
    return _BY_COUNTS.get((len(s & WALLS), FLOOR in s, CEILING in s), -1)


def surface_name(label: int) -> str:
    return SURFACE_NAMES.get(int(label), "unlabelled")
