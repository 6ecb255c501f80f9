"""The reviewers' studies of ``mamba-bio-audio bench reviewers`` (docs/reviewers.md), one module each.

Every study module holds ``NAME`` (its name on the command line), ``run_study(*, full: bool, seed: int) -> dict``
(``{"parameters": {...}, "results": {...}, "verdict": [str, ...]}``: plain data, what the JSON holds; ``full``:
the paper's sizes, for a GPU) and ``plot(result, png_path)`` (a matplotlib PNG of that dict). A study may also take
``quick: bool`` (a smoke-test size: seconds, figures meaningless), which ``bench reviewers --quick`` passes.
"""
