"""The engine: loads the model, keeps it, and answers through one async facade, `Service`.

The web layer imports this package and nothing below it: the names here are the whole of
what it may use.
"""

from app.data.catalogue import Movie
from app.data.imports import FORMATS as IMPORT_FORMATS
from app.data.imports import MAX_IMPORT_BYTES, InvalidImport, Unmatched
from app.engine.answers import Because, MovieResult, Recommendations
from app.engine.cache import CacheInfo
from app.engine.choice import check_algorithms
from app.engine.engine import Engine
from app.engine.group import (
    DEFAULT_GROUP_STRATEGY,
    GroupFilm,
    GroupRecommendations,
    GroupStrategyInfo,
    UnknownStrategy,
)
from app.engine.imports import ImportResult, Joined, join_ratings
from app.engine.nights import (
    MAX_MEMBERS,
    MAX_NAME,
    MAX_NIGHT_RATINGS,
    DatabaseUnavailable,
    Forbidden,
    InvalidName,
    Member,
    Night,
    NightError,
    NightFull,
    NightList,
    NightNotFound,
    Nights,
    TooManyNights,
    TooManyRatings,
)
from app.engine.queries import (
    DEFAULT_K,
    DEFAULT_N,
    MAX_K,
    MAX_N,
    MAX_RATINGS,
    NO_FILTERS,
    Filters,
    InvalidRatings,
    Ratings,
)
from app.engine.service import Present, Reply, Service
from app.engine.status import (
    AlgorithmStatus,
    AlgorithmUnavailable,
    Availability,
    NotReady,
    State,
    Status,
    UnknownAlgorithm,
)
from app.engine.visits import FROM_USER_LIMIT, Visit, VisitRequest
from app.recommender import Neighbour, UnknownUser

__all__ = [
    "DEFAULT_K",
    "DEFAULT_N",
    "FROM_USER_LIMIT",
    "IMPORT_FORMATS",
    "MAX_IMPORT_BYTES",
    "MAX_K",
    "MAX_MEMBERS",
    "MAX_N",
    "MAX_NAME",
    "MAX_NIGHT_RATINGS",
    "MAX_RATINGS",
    "NO_FILTERS",
    "AlgorithmStatus",
    "AlgorithmUnavailable",
    "Availability",
    "Because",
    "CacheInfo",
    "DatabaseUnavailable",
    "Engine",
    "Filters",
    "Forbidden",
    "ImportResult",
    "InvalidImport",
    "InvalidName",
    "InvalidRatings",
    "Joined",
    "Member",
    "Movie",
    "MovieResult",
    "Neighbour",
    "Night",
    "NightError",
    "NightFull",
    "NightList",
    "NightNotFound",
    "Nights",
    "NotReady",
    "Present",
    "Ratings",
    "Recommendations",
    "Reply",
    "Service",
    "State",
    "Status",
    "TooManyNights",
    "TooManyRatings",
    "UnknownAlgorithm",
    "UnknownUser",
    "Unmatched",
    "Visit",
    "VisitRequest",
    "check_algorithms",
    "join_ratings",
]
# Group recommendations (app/engine/group.py), for the night pages and API.
__all__ += [
    "DEFAULT_GROUP_STRATEGY",
    "GroupFilm",
    "GroupRecommendations",
    "GroupStrategyInfo",
    "UnknownStrategy",
]
