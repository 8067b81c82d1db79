"""botctl: a declarative trading bot for US stocks and ETFs."""

__version__ = "0.1.0"
