from typing import NamedTuple

from sqlalchemy import bindparam, select

from registry_tokens.db.queries import Query
from registry_tokens.ratelimits.models import RateLimitCounter


class SharedCount(NamedTuple):
    leased: int


# "How many numbers have all processes leased for this key in this window?": the rate
# limit status endpoint (an upper bound of the requests counted: see LeaseStore.peek).
SHARED_COUNT = Query(
    select(RateLimitCounter.count.label("leased")).where(
        RateLimitCounter.key == bindparam("key"),
        RateLimitCounter.window_start == bindparam("window_start"),
    ),
    SharedCount,
)
