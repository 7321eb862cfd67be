"""Reports over RunResults: leaderboards, significance tests, LaTeX tables and figures.

:class:`~recbole_mmkd.reporting.report.Report` holds them as DataFrames and renders them.
"""
