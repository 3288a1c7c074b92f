"""The cluster planner (see colossus/plan/cli.py)."""
