"""Forms of the rule pages: the rule builder (fields + condition rows) and the preview."""

from rules.forms.builder import (
    MAX_ROWS_ACCEPTED,
    OPERAND_SUGGESTIONS,
    OPERATOR_LABELS,
    SIDE_LABELS,
    TIMEFRAME_CHOICES,
    ConditionRow,
    RuleBuilderForm,
    new_row_key,
    rows_from_data,
    rows_from_definition,
)
from rules.forms.common import sentence
from rules.forms.preview import BAR_COUNTS, MAX_UPLOAD_BYTES, PreviewForm
from rules.preview import MAX_CHART_POINTS, MAX_LISTED_SIGNALS, PreviewResult
from scalpsite.ui import INPUT

__all__ = [
    "BAR_COUNTS",
    "INPUT",
    "MAX_CHART_POINTS",
    "MAX_LISTED_SIGNALS",
    "MAX_ROWS_ACCEPTED",
    "MAX_UPLOAD_BYTES",
    "OPERAND_SUGGESTIONS",
    "OPERATOR_LABELS",
    "ConditionRow",
    "PreviewForm",
    "PreviewResult",
    "SIDE_LABELS",
    "TIMEFRAME_CHOICES",
    "RuleBuilderForm",
    "new_row_key",
    "rows_from_data",
    "rows_from_definition",
    "sentence",
]
