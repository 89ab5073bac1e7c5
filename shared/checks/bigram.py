"""Checks for the bigram exercises (placeholder until the lesson lands)."""

from shared.checks._core import Exercise

EXERCISES: list[Exercise] = []
