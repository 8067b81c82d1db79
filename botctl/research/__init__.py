"""Research: parameter sweeps and walk-forward tests over the public backtest API.

params (paths into the config), grid (which trials), deflated (the deflated Sharpe ratio),
trials (one trial: config edit -> plan -> backtest -> metrics), execute (where trials run:
one process, a local process pool or a Dask cluster), sweep and walkforward (the two
commands' logic), record (the journal of trials) and report (the HTML report).
"""
