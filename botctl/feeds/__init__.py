"""External signal feeds: file, HTTP poll, webhook and journal sources, each signal checked
and journaled before anything may use it (docs/feeds.md)."""
