"""Offline evaluation: split the ratings, fit each algorithm on the training part, score top-k.

NumPy/SciPy/pandas only and no web: `movierec evaluate` drives it from the command line. The
package itself imports nothing, so that the server, which reads only the starter grid and the
latest report, does not load pandas.
"""
