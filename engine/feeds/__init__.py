"""Bar feeds: ib (TWS / IB Gateway), demo (synthetic market) and csv (file replay)."""
