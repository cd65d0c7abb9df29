"""How much the scheduler may hold for the consumer: fills in flight, in memory, on disk.

Memory stays flat in the size and number of wallets because every request is counted
against this budget before it is sent (scheduler.py asks `FillBudget.allows`), and every
page that arrives is counted until the consumer takes it. The numbers below are the caps
and the slice sizes they are reckoned in.
"""

from __future__ import annotations

import math

from tap_dome.concurrency import LATENCY_WEIGHT
from tap_dome.jobs import JobState, WindowJob

# Fills a slice is cut to hold, in pages: between MIN_ and MAX_SLICE_PAGES, about
# SLICE_FILLS fills. Short slices let more chains run for the same memory; each slice's
# last page is on average half empty, so very short ones cost extra requests.
SLICE_FILLS = 800
MIN_SLICE_PAGES = 4
MAX_SLICE_PAGES = 8
# Fills held in memory at most, waiting or in flight (a fill is held as its JSON text, under
# 1 KB with its share of the page): under 40 MB.
MAX_BUFFERED_FILLS = 40_000
# Fills parked on disk at most (spool.py; 16 bytes each stay in memory): under 400 MB of
# temporary files, enough for the chains of a huge wallet to run far ahead of its head.
MAX_PARKED_FILLS = 400_000
# Pages read from their sockets and parsed at once, at most, until each is stored (in
# memory or on disk): a request in flight holds no memory until its page is read, so
# under latency many may be in flight (rate x latency) while few pages are in memory. As
# many as the default helper processes: 2 to 4 did alike at the Pro tier's page of 1,000
# under latency, 8 worse (more pages parsed at once contend for the one GIL).
READING_SLOTS = 4
# Pages that wallets after the current one may hold, per request slot: enough to keep
# every slot busy while the current wallet ends, never so much that it waits for room.
AHEAD_PAGES_PER_REQUEST = 2


def slice_pages(page_size: int) -> int:
    """Pages a slice is cut to hold at this page size (see SLICE_FILLS)."""
    return max(MIN_SLICE_PAGES, min(MAX_SLICE_PAGES, SLICE_FILLS // max(1, page_size)))


class FillBudget:
    """Fills held for the consumer, in memory or parked on disk, and whether one more request
    may be sent.

    A request in flight counts as the fills it is expected to bring (a full page when its
    window has more; for a window's first request, what recent first pages held) until it
    arrives; then its page counts as the fills it holds until the consumer takes them, as
    *waiting* (in memory) or *parked* (on disk, spool.py).

    Per request slot, the wallet being emitted may hold about half a slice per chain plus
    the page in flight; later wallets share `AHEAD_PAGES_PER_REQUEST` pages more. Their
    separate share matters: thousands of small wallets are always ready to fetch, and
    without it they would fill the budget while the current wallet's chains wait for room.

    Under latency (`parking`), that rule is what would hold the rate down: the consumer
    waits on its head chain, one round trip at a time, while the other chains' pages fill
    the budget and then wait for room. So then the wallet being emitted may fetch on until
    memory (`in_memory`: the waiting pages and those being read) reaches `max_fills`, or
    the requests in flight and the parked pages reach `max_parked` (each page in flight
    must find room on disk), and a page that arrives while the waiting pages fill half the
    memory budget is parked on disk. From the first page on: pages that came in before
    parking began would stay in memory until the consumer reaches them, which for the first
    pages of a huge wallet's slices is the whole run.
    """

    def __init__(
        self,
        page_size: int,
        max_fills: int = MAX_BUFFERED_FILLS,
        max_parked: int = MAX_PARKED_FILLS,
        reading_slots: int = READING_SLOTS,
    ) -> None:
        self.page_size = page_size
        self.max_fills = max(max_fills, page_size)
        self.max_parked = max(0, max_parked)
        self.reading_slots = reading_slots
        self.own_pages = slice_pages(page_size) // 2 + 1
        self.in_flight = 0
        self.waiting = 0
        self.parked = 0
        # Being written to disk: in memory until the write succeeds (then parked), so a disk
        # that refuses pages never lets memory overshoot its budget.
        self.writing = 0
        self.parking = False
        # Whether a round trip has been seen: until then the whole memory budget is used.
        self.latency_known = False
        self._by_wallet: dict[str, int] = {}
        self._first_page = float(page_size)  # moving average of first pages' fills

    @property
    def total(self) -> int:
        """Every fill held: in flight, waiting in memory, being written, parked on disk."""
        return self.in_flight + self.waiting + self.writing + self.parked

    @property
    def in_memory(self) -> int:
        """Fills held in memory: waiting, being written to disk, and in flight; of these,
        only as many as `READING_SLOTS` pages, since a page is read from its socket only
        once it has a slot (`PageFetcher.fetch_timed`)."""
        reading = min(self.in_flight, self.reading_slots * self.page_size)
        return reading + self.waiting + self.writing

    def expected(self, job: WindowJob) -> int:
        """The fills `job`'s next request will likely bring: a full page when its window
        has more; for a slice's first page, its share of the cut window's fills; for a
        wallet's first page, what recent wallets' first pages held."""
        if job.state is not JobState.PENDING:
            return self.page_size
        if job.estimate is not None:
            return max(1, min(self.page_size, job.estimate))
        return max(1, math.ceil(self._first_page))

    def must_park(self, fills: int) -> bool:
        """Should a page of `fills` fills that is not the head's go to disk?"""
        if self.parked + self.writing + fills > self.max_parked:
            return False
        limit = self.max_fills // 2 if self.parking else self.max_fills
        return self.waiting + fills > limit

    def sent(self, wallet: str, expected: int) -> None:
        """A request of `wallet` left; count `expected` fills until it arrives."""
        self.in_flight += expected
        self._add(wallet, expected)

    def arrived(self, job: WindowJob, fills: int, kept: int, *, parked: bool = False) -> None:
        """`job`'s page (`fills` fills) arrived and `kept` of them wait for the consumer,
        in memory or (`parked`) on their way to disk (`written` or `unparked` then)."""
        if job.state is JobState.PENDING and job.estimate is None:
            self._first_page += LATENCY_WEIGHT * (fills - self._first_page)
        self.in_flight -= job.expected
        if parked:
            self.writing += kept
        else:
            self.waiting += kept
        self._add(job.wallet, kept - job.expected)

    def written(self, fills: int) -> None:
        """A page being written is on disk now."""
        self.writing -= fills
        self.parked += fills

    def unparked(self, fills: int) -> None:
        """A page being written stays in memory after all (the disk refused it)."""
        self.writing -= fills
        self.waiting += fills

    def released(self, wallet: str, fills: int, *, parked: bool = False) -> None:
        """The consumer took `fills` fills of `wallet`, from memory or (`parked`) disk."""
        if parked:
            self.parked -= fills
        else:
            self.waiting -= fills
        self._add(wallet, -fills)

    def allows(self, wallet: str, current: str | None, slots: int) -> bool:
        """May `wallet` send one more request, with `slots` requests allowed in flight?"""
        own = self.own_pages * slots * self.page_size
        ahead = AHEAD_PAGES_PER_REQUEST * slots * self.page_size
        total = self.total
        if wallet != current:
            held_ahead = total - self._by_wallet.get(current or "", 0)
            if held_ahead >= ahead:
                return False
        if self.parking and self.max_parked:
            # Every page in flight must find room on disk: a page that finds none waits
            # in memory, and there many requests in flight would add up.
            on_disk = self.in_flight + self.writing + self.parked
            return self.in_memory < self.max_fills and on_disk < self.max_parked
        # Without latency the consumer keeps up by itself: half the budget does as well
        # (200,000 fills: the same speed) and holds memory as flat as a small wallet's.
        local = self.max_fills // 2 if self.latency_known else self.max_fills
        if wallet == current:
            return total < min(local, own + ahead)
        return total < local

    def _add(self, wallet: str, fills: int) -> None:
        left = self._by_wallet.get(wallet, 0) + fills
        if left:
            self._by_wallet[wallet] = left
        else:
            self._by_wallet.pop(wallet, None)
