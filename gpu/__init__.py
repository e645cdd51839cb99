"""Array backend for editkit's linear algebra (CuPy on CUDA, torch otherwise).

This package imports nothing of editkit's; the backend itself arrives with the
intruder-dimension work (see the project's issues).
"""
