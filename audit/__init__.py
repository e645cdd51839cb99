"""Analyses that compare a base and a tuned model, and the audit report."""
