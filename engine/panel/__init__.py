"""The control panel: the dashboard (status, Start / Stop, pickers, tiles) and the Settings
page. Thin views over ``engine.services``; the worker never imports this package."""
