"""Export configuration: one typed dataclass with the graph's opset and the parity check's pairs and tolerances."""

from __future__ import annotations

from dataclasses import dataclass

from verify_cli.errors import FaceverifyError

MIN_OPSET = 17
DRY_RUN_PAIRS = 16  # --dry-run: a handful of real validation pairs, half of each class


@dataclass(frozen=True)
class ExportConfig:
    """What decides an export; the tolerances are the issue's and are written into the parity report."""

    opset: int = 17
    pairs: int | None = None  # validation pairs measured for parity (None: all of them)
    min_pairs: int = 200  # fewer real pairs than this prove nothing (waived by dry_run)
    prob_atol: float = 1e-5  # max |p_torch - p_onnx| over the pairs
    embedding_rtol: float = 1e-4  # max over images of ||e_onnx - e_torch||_2 / ||e_torch||_2
    batch_size: int = 64  # images per forward pass on either side
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.opset < MIN_OPSET:
            raise FaceverifyError(f"opset {self.opset} is too old; faceverify models need opset {MIN_OPSET} or newer")
        if self.batch_size < 1:
            raise FaceverifyError(f"batch size must be at least 1, got {self.batch_size}")
        if self.pairs is not None and self.pairs < (2 if self.dry_run else self.min_pairs):
            raise FaceverifyError(
                f"--pairs {self.pairs}: parity needs at least {self.min_pairs} validation pairs "
                "(fewer only with --dry-run, and never fewer than 2)"
            )

    @property
    def wanted_pairs(self) -> int | None:
        """How many pairs to measure: the request, the dry-run handful, or None for all."""
        if self.pairs is not None:
            return self.pairs
        return DRY_RUN_PAIRS if self.dry_run else None

    @property
    def required_pairs(self) -> int:
        """The fewest pairs an export may be proven on."""
        return 2 if self.dry_run else self.min_pairs
