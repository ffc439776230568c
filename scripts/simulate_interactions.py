"""Write a SIMULATED interaction log for a catalog (see evaluation.simulation for the model).

    python scripts/simulate_interactions.py sample_catalog/items.csv --out sample_catalog/interactions.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import EngineError
from engine.catalog import Catalog
from evaluation.simulation import SimulationConfig, simulate_interactions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("catalog")
    p.add_argument("--out", required=True, help="events CSV; the users' taste profiles go beside it (*_tastes.csv)")
    d = SimulationConfig()
    p.add_argument("--users", type=int, default=d.n_users)
    p.add_argument("--seed", type=int, default=d.seed)
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        config = SimulationConfig(n_users=args.users, seed=args.seed)
        events, tastes = simulate_interactions(Catalog.from_file(args.catalog), config)
        events.to_csv(out, index=False)
        tastes.to_csv(out.with_name(out.stem + "_tastes.csv"), index=False)
    except (EngineError, OSError) as exc:  # OSError: the output cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(events):,} simulated events of {events.user_id.nunique()} users to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
