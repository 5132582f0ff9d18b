"""`make bench`: every benchmark, each printing ratios measured in the same run."""

from __future__ import annotations

import sys
import warnings

from bench import backfill, cold_import, filters, freshness, records

BENCHES = {"records": records.run, "cold_import": cold_import.run, "filters": filters.run,
           "backfill": backfill.run, "freshness": freshness.run}


def main() -> None:
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    chosen = sys.argv[1:] or list(BENCHES)
    for name in chosen:
        BENCHES[name]()


if __name__ == "__main__":
    main()
