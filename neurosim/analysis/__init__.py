"""Analysis of recorded stores: reports, tables, figures (reads stores only)."""
