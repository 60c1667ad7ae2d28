"""Quota allocation: the company target plus over-assignment, split among the reps of a plan."""

from tercap.quota.allocate import QUOTA_COLUMNS, QUOTA_METHODS, Quotas, allocate_quotas

__all__ = ["QUOTA_COLUMNS", "QUOTA_METHODS", "Quotas", "allocate_quotas"]
