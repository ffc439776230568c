"""`benchmarks/validate_defaults.py --quick`: every model's variants fit and are scored on validation."""

from __future__ import annotations

import pytest

from benchmarks.validate_defaults import VARIANTS, main


@pytest.mark.parametrize("model", sorted(VARIANTS))
def test_quick_run_prints_a_row_per_variant_and_the_table(model: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--model", model]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("[")]
    assert len(rows) == 2 and all("val NDCG@10 0." in line for line in rows)
    table = out.split("\n\n")[-1].splitlines()
    assert table[0].split()[:3] == ["log", "variant", "mean"] and len(table) == 4  # header, 2 variants, total time


def test_unknown_variant_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--quick", "--model", "neumf", "--variants", "n_neg_9"])
    assert "n_neg_9" in capsys.readouterr().err
