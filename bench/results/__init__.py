"""The results library: one loader of run records, grouping into table rows, statistics, cell and
table formats, plots and the per-seed comparison. ``bench report`` and ``bench compare`` are its
commands; ``bench suite`` reads records through its loader."""
