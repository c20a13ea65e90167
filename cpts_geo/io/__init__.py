"""Planners' files in and out: territory files into the membership table, tables to files."""

from .readers import outline_fractions, read_territories

__all__ = ["outline_fractions", "read_territories"]
