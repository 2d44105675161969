"""duplicity 3.2.1 commands as argv tuples: one module per duplicity action, no side effects.

common.py holds what they share (repository, selection, times, URLs, environment).
"""
