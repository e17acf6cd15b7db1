"""Watchlists: the up-to-5 symbols the engine scans."""
