"""Run statistics for people: the funnel table."""

from assay.report.funnel import funnel_table, print_funnel

__all__ = ["funnel_table", "print_funnel"]
