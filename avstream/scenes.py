"""The label set of TAU Urban Audio-Visual Scenes 2021, shared by training, export and the daemon.

Alphabetical order is the DCASE submission order, so index i means the same class everywhere.
"""

from typing import Final

SCENES: Final[tuple[str, ...]] = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)
UNKNOWN: Final[str] = "unknown"
